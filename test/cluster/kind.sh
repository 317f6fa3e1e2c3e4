#!/usr/bin/env bash
# kind back end of the harness, chosen with TP_CLUSTER=kind: for a laptop that has kind and a
# Docker engine with kind's node image. Usage: kind.sh up | down | load IMAGE...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
name=${TP_KIND_NAME:-telepresence-ts}
# kind needs no root, so its state lives with the user's cache unless TP_STATE says otherwise.
[ -w "$(dirname "$TP_STATE")" ] || TP_STATE=$TP_CACHE/kind-state
kubeconfig=$TP_STATE/kind.kubeconfig

command -v kind >/dev/null || tp_die "TP_CLUSTER=kind but kind is not installed" "install kind (https://kind.sigs.k8s.io), or unset TP_CLUSTER to use the local cluster"
docker info >/dev/null 2>&1 || tp_die "TP_CLUSTER=kind but no Docker engine answers" "start Docker, then retry"

case ${1:-} in
  up)
    mkdir -p "$TP_STATE"
    if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
      tp_log "creating kind cluster $name"
      kind create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 180s >&2
    else
      kind export kubeconfig --name "$name" --kubeconfig "$kubeconfig" >&2
    fi
    # A webhook served by a test process on this machine is reached from the kind node through
    # the gateway of kind's Docker network.
    gw=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | tr ' ' '\n' | grep -m1 '\.')
    cat >"$TP_STATE/cluster.env" <<ENV
KUBECONFIG=$kubeconfig
TP_CLUSTER=kind
TP_HOST_ADDRESS=$gw
TP_NODE_NAME=$name-control-plane
ENV
    echo "KUBECONFIG=$kubeconfig"
    ;;
  down)
    kind delete cluster --name "$name" >&2 || true
    rm -rf "$TP_STATE/kind.kubeconfig" "$TP_STATE/cluster.env"
    ;;
  load)
    shift
    [ $# -gt 0 ] || tp_die "no image given" "usage: npm run cluster:load-image -- IMAGE [IMAGE...]"
    kind load docker-image --name "$name" "$@" >&2
    ;;
  *) tp_die "usage: kind.sh up | down | load IMAGE..." ;;
esac
