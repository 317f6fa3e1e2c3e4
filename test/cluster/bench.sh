#!/usr/bin/env bash
# Prints how long the local cluster takes to come up and go down, and checks (does not
# assume) that `down` leaves nothing behind.
#   bash test/cluster/bench.sh          warm up (cached binaries), down, check
#   bash test/cluster/bench.sh --cold   also a cold up: empty Go build cache and binary cache,
#                                       so the Kubernetes build is included (10-30 minutes)
# Targets: warm up under 90 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

cold=false
[ "${1:-}" = --cold ] && cold=true
seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

bash "$here/down.sh" >/dev/null 2>&1
results=()

if $cold; then
  scratch=$(mktemp -d)
  t0=$(seconds)
  GOCACHE=$scratch/gocache TP_K8S_BIN=$scratch/bin bash "$here/up.sh" >/dev/null 2>"$scratch/up.log" \
    || { tail -20 "$scratch/up.log" >&2; exit 1; }
  t1=$(seconds)
  results+=("cold up (build included): $(elapsed "$t0" "$t1") s")
  TP_K8S_BIN=$scratch/bin bash "$here/down.sh" >/dev/null 2>&1
  rm -rf "$scratch"
fi

log=$(mktemp)
t0=$(seconds)
bash "$here/up.sh" >/dev/null 2>"$log" || { tail -20 "$log" >&2; exit 1; }
t1=$(seconds)
results+=("warm up: $(elapsed "$t0" "$t1") s (target < 90 s)")
t0=$(seconds)
bash "$here/down.sh" >/dev/null 2>&1
t1=$(seconds)
results+=("down: $(elapsed "$t0" "$t1") s")
rm -f "$log"

echo "cluster harness, Kubernetes $K8S_VERSION, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '  %s\n' "${results[@]}"
echo "after down:"
bash "$here/check-clean.sh" | sed 's/^/  /'
