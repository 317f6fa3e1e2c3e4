#!/usr/bin/env bash
# Builds helm 4 and helm 3 from the Go module proxy, once per version (cached under
# ~/.cache/telepresence-ts/helm-<version>/), as scripts/krew-tools.sh builds krew, and prints the
# path of each binary, helm 4's first. The chart in cluster/chart/ is checked with both, since
# users run either.
# Usage: bash scripts/helm-tools.sh [3|4]   (a major version prints that one only)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TP_RELEASE_VERSION=unused
# shellcheck source=release-settings.sh
. "$here/release-settings.sh"
TP_HELM4_VERSION=${TP_HELM4_VERSION:-v4.3.2}
TP_HELM3_VERSION=${TP_HELM3_VERSION:-v3.21.4}

case ${1:-all} in
  all) majors="4 3" ;;
  3 | 4) majors=$1 ;;
  *) echo "usage: bash scripts/helm-tools.sh [3|4]" >&2; exit 2 ;;
esac

for major in $majors; do
  version_var=TP_HELM${major}_VERSION
  version=${!version_var}
  dir=$TP_CACHE/helm-$version
  if [ ! -x "$dir/helm" ]; then
    command -v go >/dev/null || { echo "error: building helm needs Go (https://go.dev/dl/)" >&2; exit 1; }
    # Built into a private folder and moved into place, so that two builds at once (parallel
    # tests) never leave a half-written binary where the other looks for it.
    tmp=$(mktemp -d "$TP_CACHE/.helm-build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    GOFLAGS=-mod=mod GOBIN=$tmp go install "helm.sh/helm/v$major/cmd/helm@$version" >&2
    mkdir -p "$dir"
    mv -f "$tmp/helm" "$dir/helm"
    rm -rf "$tmp"
    trap - EXIT
  fi
  echo "$dir/helm"
done
