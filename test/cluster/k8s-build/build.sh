#!/usr/bin/env bash
# Builds the Kubernetes server binaries (and CoreDNS) from the Go module proxy.
#
# k8s.io/kubernetes cannot be required as an ordinary module: its go.mod points every
# k8s.io/* staging module at ./staging/src/..., which does not exist in the module zip. We
# therefore generate a tiny module that requires k8s.io/kubernetes at the pinned version and
# replaces each staging module with its published v0.X.Y release, then `go build`s the
# commands. Output is cached outside the checkout, keyed by version, so a warm `up` skips this.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/versions.sh
. "$here/../lib/versions.sh"

out=${1:-$TP_K8S_BIN}
if [ -x "$out/kubelet" ] && [ -x "$out/coredns" ] && [ -f "$out/.complete" ]; then
  echo "kubernetes $K8S_VERSION binaries already built in $out"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is not installed; install Go 1.22+ (https://go.dev/dl) and retry" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tp-k8s-build.XXXXXX")
trap '[ -n "${TP_KEEP_BUILD:-}" ] || rm -rf "$work"' EXIT
staging_minor="v0.${K8S_VERSION#v1.}"

echo "==> resolving k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$gomod" ] || { echo "error: could not download k8s.io/kubernetes@$K8S_VERSION (is the Go module proxy reachable?)" >&2; exit 1; }

{
  echo "module tpk8sbuild"
  echo
  echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  # Every `k8s.io/x => ./staging/src/k8s.io/x` line becomes `k8s.io/x => k8s.io/x v0.Y.Z`.
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#replace \1 => \1 '"$staging_minor"'#p' "$gomod"
} > "$work/go.mod"
cat > "$work/tools.go" <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
echo "==> go mod tidy ($(grep -c '^replace' "$work/go.mod") staging modules replaced)"
(cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$work/tidy.log") || { cat "$work/tidy.log" >&2; exit 1; }

mkdir -p "$out"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#v1.} -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
echo "==> building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (several minutes on a cold cache)"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)

echo "==> building coredns $COREDNS_VERSION"
cdir="$work/coredns"
mkdir -p "$cdir"
(cd "$cdir" && printf 'module tpcorednsbuild\n\ngo 1.22\n' > go.mod \
  && printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' > tools.go \
  && GOFLAGS=-mod=mod go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 \
  && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/coredns" github.com/coredns/coredns)
touch "$out/.complete"
echo "==> binaries ready in $out"
