#!/usr/bin/env bash
# Builds what a kind cluster needs on a machine without kind or its published node image, from
# the Go module proxy, each cached by version: kind itself, kubeadm and kubectl (built like the
# harness's other Kubernetes binaries, see k8s-build/build.sh), and etcd 3.5.
# Usage: build-tools.sh [kind|k8s|etcd]...   (default: all three)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=versions.sh
. "$here/versions.sh"
command -v go >/dev/null || tp_die "Go is not installed" "install Go 1.22+ (https://go.dev/dl) and retry"

build_kind() {
  [ -x "$TP_KIND_BIN/kind" ] && return 0
  tp_log "building kind $KIND_VERSION (cached in $TP_KIND_BIN)"
  mkdir -p "$TP_KIND_BIN.tmp"
  CGO_ENABLED=0 GOBIN="$TP_KIND_BIN.tmp" GOFLAGS=-mod=mod go install "sigs.k8s.io/kind@$KIND_VERSION"
  rm -rf "$TP_KIND_BIN" && mv "$TP_KIND_BIN.tmp" "$TP_KIND_BIN"
}

# A throw-away module that requires MODULE@VERSION, with the replace lines given on stdin.
# Usage: gen_module DIR MODULE VERSION
gen_module() {
  local dir=$1 module=$2 version=$3
  mkdir -p "$dir"
  { printf 'module tpkindbuild\n\ngo 1.22\n\nrequire %s %s\n\n' "$module" "$version"; cat; } >"$dir/go.mod"
}

build_k8s() {
  [ -x "$TP_KIND_K8S_BIN/kubeadm" ] && [ -x "$TP_KIND_K8S_BIN/kubectl" ] && return 0
  tp_log "building kubeadm and kubectl $K8S_VERSION (cached in $TP_KIND_K8S_BIN)"
  local work gomod staging ldflags
  work=$(mktemp -d "${TMPDIR:-/tmp}/tp-kind-k8s.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf $(printf %q "$work")" RETURN
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || tp_die "could not download k8s.io/kubernetes@$K8S_VERSION" "is the Go module proxy reachable? (go env GOPROXY)"
  staging="v0.${K8S_VERSION#v1.}"
  # As in k8s-build/build.sh: each staging module replaced by its published release.
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#replace \1 => \1 '"$staging"'#p' "$gomod" \
    | gen_module "$work" k8s.io/kubernetes "$K8S_VERSION"
  sed -i "s/^go 1.22$/go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")/" "$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubeadm"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' >"$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#v1.} -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  mkdir -p "$TP_KIND_K8S_BIN.tmp"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$TP_KIND_K8S_BIN.tmp/" \
    k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$TP_KIND_K8S_BIN" && mv "$TP_KIND_K8S_BIN.tmp" "$TP_KIND_K8S_BIN"
}

build_etcd() {
  [ -x "$TP_KIND_ETCD_BIN/etcd" ] && return 0
  tp_log "building etcd $KIND_ETCD_VERSION (cached in $TP_KIND_ETCD_BIN)"
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/tp-kind-etcd.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf $(printf %q "$work")" RETURN
  # The server module's own replace lines point at sibling folders; its sibling modules are
  # published at the same version.
  printf '' | gen_module "$work" go.etcd.io/etcd/server/v3 "$KIND_ETCD_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1)
  mkdir -p "$TP_KIND_ETCD_BIN.tmp"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TP_KIND_ETCD_BIN.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$TP_KIND_ETCD_BIN" && mv "$TP_KIND_ETCD_BIN.tmp" "$TP_KIND_ETCD_BIN"
}

[ $# -gt 0 ] || set -- kind k8s etcd
for what in "$@"; do
  case $what in
    kind) build_kind ;;
    k8s) build_k8s ;;
    etcd) build_etcd ;;
    *) tp_die "unknown tool $what" "usage: build-tools.sh [kind|k8s|etcd]..." ;;
  esac
done
