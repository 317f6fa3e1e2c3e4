#!/usr/bin/env bash
# Packs the CLI as the npm package `telepresence-ts`: `npm install -g telepresence-ts` puts
# `kubectl-telepresence` on PATH, where kubectl's plugin discovery finds it. The package is the
# released CLI as stage-cli.sh lays it out (bundled: nothing to install with it), a package.json
# and a README.
#
# Usage: bash scripts/pack-npm.sh [--no-build] [OUT_DIR]   (default dist/release; builds first
#        unless --no-build says dist/ is built already)
# Prints the tarball's path last.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=true
if [ "${1:-}" = --no-build ]; then build=false; shift; fi
OUT=${1:-$ROOT/dist/release}
cd "$ROOT"
version=$(node -p "require('./package.json').version")
stage=$(mktemp -d "${TMPDIR:-/tmp}/tp-npm.XXXXXX")
trap 'rm -rf "$stage"' EXIT

if $build; then npm run -s build >/dev/null; fi
pkg=$stage/package
mkdir -p "$OUT"
bash scripts/stage-cli.sh "$pkg"

node - "$pkg" "$version" <<'JS'
const { writeFileSync } = require('node:fs');
const [dir, version] = process.argv.slice(2);
const pkg = {
  name: 'telepresence-ts',
  version,
  description: 'kubectl telepresence: run a service on your workstation as if it were a pod of your Kubernetes cluster.',
  license: 'Apache-2.0',
  // The CLI is an ES module; chunks/ holds its lazily loaded parts.
  type: 'module',
  bin: { 'kubectl-telepresence': 'bin/kubectl-telepresence' },
  files: ['bin/', 'chunks/', 'kubectl-telepresence.js', 'kubectl-telepresence.js.map', 'README.md'],
  engines: { node: '>=20.19' },
  // Outbound access needs Linux's TUN device and the engine is built for these two.
  os: ['linux'],
  cpu: ['x64', 'arm64'],
  keywords: ['kubernetes', 'kubectl-plugin', 'telepresence', 'intercept', 'development'],
};
writeFileSync(`${dir}/package.json`, `${JSON.stringify(pkg, null, 2)}\n`);
JS

cat >"$pkg/README.md" <<MD
# telepresence-ts $version

\`kubectl telepresence\`: run a service on your workstation as if it were a pod of your Kubernetes
cluster. It receives the workload's traffic (all of it, or only requests with your HTTP headers),
reaches the cluster's Services and DNS names, and sees the workload's environment and volumes.

    npm install -g telepresence-ts
    kubectl telepresence install          # the traffic-manager and agent-injector, once per cluster
    kubectl telepresence intercept web --port 8080:http

Needs Node.js 20.19 or newer and kubectl on Linux (amd64 or arm64); \`--mount\` needs sshfs.
MD

(cd "$OUT" && npm pack --silent "$pkg" >/dev/null)
tarball=$OUT/telepresence-ts-$version.tgz
[ -f "$tarball" ] || { echo "error: npm pack made no $tarball" >&2; exit 1; }
echo "packed $(du -h "$tarball" | cut -f1) ($(tar -tzf "$tarball" | wc -l) files)" >&2
echo "$tarball"
