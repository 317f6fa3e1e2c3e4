#!/usr/bin/env bash
# Packs the CLI for krew: one archive (the released CLI as stage-cli.sh lays it out, for
# linux/amd64 and linux/arm64) and the plugin manifest `<name>.yaml` that points at it with its
# sha256, then checks the manifest with krew's own validator (scripts/krew-tools.sh). The
# download links come from scripts/release-settings.sh.
#
# Usage: bash scripts/pack-krew.sh [--no-build] [OUT_DIR]   (default dist/release)
# Prints the manifest's path last; the archive is beside it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=true
if [ "${1:-}" = --no-build ]; then build=false; shift; fi
OUT=${1:-$ROOT/dist/release}
cd "$ROOT"
TP_RELEASE_VERSION=$(node -p "require('./package.json').version")
# shellcheck source=release-settings.sh
. scripts/release-settings.sh
stage=$(mktemp -d "${TMPDIR:-/tmp}/tp-krew.XXXXXX")
trap 'rm -rf "$stage"' EXIT

if $build; then npm run -s build >/dev/null; fi
mkdir -p "$OUT"
bash scripts/stage-cli.sh "$stage/cli"
archive=kubectl-telepresence-v$TP_RELEASE_VERSION-linux.tar.gz
# Fixed owner, order and times: the same build packs the same bytes, and so the same sha256.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage/cli" -czf "$OUT/$archive" .
sha=$(sha256sum "$OUT/$archive" | cut -d' ' -f1)

manifest=$OUT/$TP_KREW_NAME.yaml
platform() { # ARCH
  cat <<YAML
  - selector:
      matchLabels:
        os: linux
        arch: $1
    uri: $TP_RELEASE_URL/$archive
    sha256: $sha
    bin: bin/kubectl-telepresence
    files:
      - from: bin
        to: .
      - from: chunks
        to: .
      - from: kubectl-telepresence.js
        to: .
      - from: package.json
        to: .
YAML
}
{
  cat <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: $TP_KREW_NAME
spec:
  version: v$TP_RELEASE_VERSION
  homepage: $TP_HOMEPAGE
  shortDescription: Run a service locally as if it were a pod in the cluster
  description: |
    Intercepts a workload's traffic (all of it, or only requests carrying your HTTP
    headers) to a process on your workstation, which also reaches the cluster's
    Services and DNS names and sees the workload's environment and volumes.
    Run \`kubectl telepresence install\` once per cluster, then
    \`kubectl telepresence intercept <workload> --port <local>:<service port>\`.
  caveats: |
    Needs Node.js 20.19 or newer on PATH, and sshfs for --mount.
    Outbound access (reaching the cluster's Services) asks for root once per connect.
  platforms:
YAML
  platform amd64
  platform arm64
} >"$manifest"

validator=$(bash scripts/krew-tools.sh)/validate-krew-manifest
"$validator" -manifest "$manifest" -skip-install >&2
echo "packed $archive ($(du -h "$OUT/$archive" | cut -f1)) and $(basename "$manifest"), validated" >&2
echo "$manifest"
