#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is needed, builds, checks
# types, lint and generated code, runs the unit tests and the cluster harness's own checks,
# brings up the real local Kubernetes, runs the end-to-end suites and the VS Code suites (a real
# code-server in Chromium) against it, takes it down, then runs the end-to-end suites again on a
# two-node kind cluster (built here when kind and its node image are not at hand), and takes
# that down too, checking each time that nothing of the cluster remains. Exits non-zero when
# anything fails. TP_TEST_KIND=0 leaves out the kind part.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

results=$(mktemp)
cluster_up=false
kind_up=false
finish() {
  rc=$?
  if $cluster_up; then
    step "cluster down"
    bash test/cluster/down.sh --verify || rc=1
  fi
  if $kind_up; then
    step "kind cluster down"
    TP_CLUSTER=kind bash test/cluster/down.sh --verify || rc=1
  fi
  if [ -s "$results" ]; then
    # Each tap run appended "passed failed"; this is the total over all of them.
    awk '{ p += $1; f += $2 } END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$results"
  fi
  rm -f "$results"
  exit $rc
}
trap finish EXIT

step "dependencies"
bash scripts/install-deps.sh
step "build";      npm run -s build
step "typecheck";  npm run -s typecheck
step "lint";       npm run -s lint
step "generated code is up to date"; npm run -s -w proto check

step "unit tests"
TP_TAP_RESULTS=$results npm run -s test:unit

step "netstack (Go) tests"; (cd netstack && go vet ./... && go test ./...)

step "cluster harness: its checks of the machine (no cluster may be up)"
bash test/cluster/down.sh >/dev/null
TP_TAP_RESULTS=$results npm run -s test:harness

step "cluster up"
cluster_up=true
kubeconfig=$(bash test/cluster/up.sh | tail -n 1)
export "${kubeconfig?}"

step "end-to-end tests"
TP_TAP_RESULTS=$results npm run -s test:e2e

step "the extension in a real VS Code (code-server, driven in Chromium) on the cluster"
TP_TAP_RESULTS=$results npm run -s test:vscode

[ "${TP_TEST_KIND:-1}" = 0 ] && exit 0

step "cluster down (the kind cluster comes next)"
cluster_up=false
bash test/cluster/down.sh --verify

step "kind: a control plane and a worker"
kind_up=true
kind_started=$(date +%s)
kubeconfig=$(TP_CLUSTER=kind TP_KIND_NODES=2 bash test/cluster/up.sh | tail -n 1)
export "${kubeconfig?}"
# The suites read the rest (TP_CLUSTER, the host's address) from the kind cluster's cluster.env.
TP_STATE=$(dirname "${kubeconfig#KUBECONFIG=}")
export TP_STATE
printf 'kind cluster up in %ss\n' "$(($(date +%s) - kind_started))"

step "end-to-end tests on kind"
TP_TAP_RESULTS=$results npm run -s test:e2e

step "the extension in a real VS Code on kind"
TP_TAP_RESULTS=$results npm run -s test:vscode
