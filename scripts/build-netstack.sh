#!/usr/bin/env bash
# Builds the packet engine of outbound access (netstack/, Go) into dist/bin/tp-netstack, a
# static, stripped binary. Skips the build when the binary is newer than every file under
# netstack/. Uses the machine's `go`; prints one line when it builds, nothing when it skips.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/dist/bin/tp-netstack
cd "$ROOT/netstack"

if [ -x "$OUT" ] && [ -z "$(find . -newer "$OUT" -print -quit)" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "error: building netstack/ needs Go (https://go.dev/dl/)" >&2; exit 1; }

mkdir -p "$(dirname "$OUT")"
# CGO off: a static binary runs on any Linux without a matching libc. -buildvcs=false: the
# build must not depend on being able to read the git repository.
CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
echo "built dist/bin/tp-netstack"
