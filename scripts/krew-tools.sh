#!/usr/bin/env bash
# Builds krew and its manifest validator from the Go module proxy, once per version (cached
# under ~/.cache/telepresence-ts/krew-<version>/bin), and prints that folder.
# Usage: bash scripts/krew-tools.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TP_RELEASE_VERSION=unused
# shellcheck source=release-settings.sh
. "$here/release-settings.sh"
bin=$TP_CACHE/krew-$TP_KREW_VERSION/bin
for tool in krew validate-krew-manifest; do
  [ -x "$bin/$tool" ] && continue
  command -v go >/dev/null || { echo "error: building $tool needs Go (https://go.dev/dl/)" >&2; exit 1; }
  GOFLAGS=-mod=mod GOBIN=$bin go install "sigs.k8s.io/krew/cmd/$tool@$TP_KREW_VERSION" >&2
done
echo "$bin"
