#!/usr/bin/env bash
# Lays out the CLI as it is released, in DIR: the bundled script and its lazily loaded chunks (no
# dependencies to install); the package.json beside them, which says the script is an ES module
# and names the version that the VS Code extension reads to tell whether this CLI is its own
# (pack-npm.sh writes a fuller one over it); the `bin/kubectl-telepresence` shim that kubectl's
# plugin discovery finds; and the packet engine of outbound access for linux/amd64 and
# linux/arm64 behind `bin/tp-netstack`, which runs the one for this machine. The npm package
# (pack-npm.sh) and the krew archive (pack-krew.sh) are this folder. Expects `npm run build` to
# have run.
#
# Usage: bash scripts/stage-cli.sh DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: stage-cli.sh DIR}
cd "$ROOT"
[ -f dist/kubectl-telepresence.js ] || { echo "error: dist/ holds no built CLI" >&2; echo "hint:  run npm run build first" >&2; exit 1; }
command -v go >/dev/null || { echo "error: building the packet engine needs Go (https://go.dev/dl/)" >&2; exit 1; }

mkdir -p "$dir/bin"
cp dist/kubectl-telepresence.js dist/kubectl-telepresence.js.map dist/package.json "$dir/"
cp -r dist/chunks "$dir/chunks"
cp dist/bin/kubectl-telepresence "$dir/bin/"
for arch in amd64 arm64; do
  (cd netstack && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$dir/bin/tp-netstack-linux-$arch" .)
done
# The name the network daemon runs: bin/tp-netstack beside the CLI's script.
cat >"$dir/bin/tp-netstack" <<'SH'
#!/bin/sh
# The packet engine built for this machine's architecture.
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "tp-netstack: no packet engine for $(uname -m) in this release (linux amd64 and arm64 only)" >&2; exit 1 ;;
esac
exec "$(dirname -- "$(readlink -f -- "$0")")/tp-netstack-linux-$arch" "$@"
SH
chmod +x "$dir/bin/tp-netstack" "$dir/bin/kubectl-telepresence" "$dir/kubectl-telepresence.js"
