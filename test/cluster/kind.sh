#!/usr/bin/env bash
# kind back end of the harness, chosen with TP_CLUSTER=kind. Usage: kind.sh up | down [--verify] | load IMAGE...
#
# Two ways, chosen at `up` and remembered in the state folder for `down` and `load`:
#   kind     a laptop with kind on PATH and a Docker engine that answers: kind and its published
#            node image, as they are.
#   built    otherwise (or TP_KIND_BUILD=1): everything is built here and cached by version
#            under $TP_CACHE/kind (kind/build-tools.sh, kind/build-node.sh), and the cluster
#            runs in a dockerd of its own (kind/dockerd.sh) whose runtime drops
#            CAP_SYS_RESOURCE, with host-gw pod networking (kind/network.sh).
# TP_KIND_NODES=N (default 1): one control-plane and N-1 workers.
# State (cluster.env, kubeconfig): $TP_STATE if set, else /var/lib/tp-kind (or
# $TP_CACHE/kind-state where that cannot be written); point the e2e suites at it with TP_STATE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
user_state=${TP_STATE:-}
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=kind/versions.sh
. "$here/kind/versions.sh"
state=${user_state:-$TP_KIND_STATE}
[ -w "$(dirname "$state")" ] || state=$TP_CACHE/kind-state
TP_KIND_STATE=$state
export TP_KIND_STATE
name=${TP_KIND_NAME:-telepresence-ts}
kubeconfig=$state/kind.kubeconfig
nodes=${TP_KIND_NODES:-1}
case $nodes in '' | *[!0-9]* | 0) tp_die "TP_KIND_NODES=$nodes is not a number of nodes" "use TP_KIND_NODES=1 or 2" ;; esac

mode() {
  if [ -f "$state/mode" ]; then cat "$state/mode"
  elif [ "${TP_KIND_BUILD:-}" != 1 ] && command -v kind >/dev/null && docker info >/dev/null 2>&1; then echo kind
  else echo built
  fi
}
MODE=$(mode)
if [ "$MODE" = built ]; then
  export DOCKER_HOST=unix://$TP_KIND_DOCKER_SOCK
  PATH=$TP_KIND_BIN:$TP_KIND_K8S_BIN:$PATH
fi

write_env() { # HOST_ADDRESS
  cat >"$state/cluster.env" <<ENV
KUBECONFIG=$kubeconfig
TP_CLUSTER=kind
TP_HOST_ADDRESS=$1
TP_NODE_NAME=$name-control-plane
ENV
}

kind_config() { # API_SERVER_ADDRESS
  printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n'
  printf '  apiServerAddress: "%s"\n  podSubnet: "%s"\n  serviceSubnet: "%s"\n' "$1" "$TP_KIND_POD_CIDR" "$TP_KIND_SERVICE_CIDR"
  [ "$MODE" = built ] && printf '  disableDefaultCNI: true\n  ipFamily: ipv4\n'
  printf 'nodes:\n- role: control-plane\n'
  for ((i = 1; i < nodes; i++)); do printf -- '- role: worker\n'; done
}

up_kind() {
  command -v kind >/dev/null || tp_die "TP_CLUSTER=kind but kind is not installed" "install kind (https://kind.sigs.k8s.io), or unset TP_CLUSTER to use the local cluster"
  docker info >/dev/null 2>&1 || tp_die "TP_CLUSTER=kind but no Docker engine answers" "start Docker, then retry"
  if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
    tp_log "creating kind cluster $name ($nodes node(s))"
    kind_config 127.0.0.1 >"$state/kind.yaml"
    kind create cluster --name "$name" --config "$state/kind.yaml" --kubeconfig "$kubeconfig" --wait 180s >&2
  else
    kind export kubeconfig --name "$name" --kubeconfig "$kubeconfig" >&2
    kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1 \
      || tp_die "kind cluster $name exists but its API server does not answer" "delete it with: kind delete cluster --name $name, then run cluster:up again"
  fi
  # A webhook served by a test process on this machine is reached from the kind node through
  # the gateway of kind's Docker network.
  write_env "$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | tr ' ' '\n' | grep -m1 '\.')"
}

# Nodes found in the data root when no kind dockerd was running before this `up` (the check
# above saw none): a run ended without `down` (the machine stopped, or its disk was copied while
# a cluster ran). Nothing of them can resume, since their daemon, network and mounts are gone, so
# they are removed rather than refused.
remove_remains() {
  local left
  left=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$name")
  [ -n "$left" ] || return 0
  tp_log "removing $(echo "$left" | wc -l) node container(s) of cluster $name left by a run that ended without cluster:down"
  # shellcheck disable=SC2086
  docker rm -f -v $left >/dev/null
  docker network rm kind >/dev/null 2>&1 || true
}

up_built() {
  [ "$(id -u)" = 0 ] || tp_die "TP_CLUSTER=kind without kind and Docker here needs root (it starts a dockerd)" "run it with sudo"
  if [ -f "$state/cluster.env" ] && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    tp_log "kind cluster $name is already up"
    return 0
  fi
  # Nodes of ours from an earlier run whose API server does not answer: refused before anything
  # is built or started, so that this run changes nothing and `down` can still see them.
  if [ -S "$TP_KIND_DOCKER_SOCK" ] && [ -n "$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$name" 2>/dev/null)" ]; then
    tp_die "a kind cluster $name from an earlier run exists in $TP_KIND_DOCKER_SOCK but its API server does not answer" \
      "remove it with: TP_CLUSTER=kind npm run cluster:down, then run cluster:up again"
  fi
  # On failure everything is removed again, unless TP_KIND_KEEP=1 (to look at the nodes).
  [ "${TP_KIND_KEEP:-}" = 1 ] || trap 'rc=$?; if [ $rc -ne 0 ]; then tp_log "start failed; removing what was started"; bash "$here/kind.sh" down >&2 || true; fi' EXIT
  bash "$here/kind/build-tools.sh" kind k8s etcd
  # kind bind-mounts /lib/modules; Docker makes an empty one where the machine has none.
  [ -e /lib/modules ] || touch "$state/made-lib-modules"
  bash "$here/kind/dockerd.sh" start
  remove_remains
  bash "$here/kind/build-node.sh"
  if ! docker network inspect kind >/dev/null 2>&1; then
    docker network create --driver bridge --subnet "$TP_KIND_NET_SUBNET" --gateway "$TP_KIND_NET_GATEWAY" \
      -o "com.docker.network.bridge.name=$TP_KIND_NET_BRIDGE" kind >/dev/null
  fi
  tp_log "creating kind cluster $name ($nodes node(s))"
  # The API server is published on the kind network's gateway rather than 127.0.0.1, so that
  # network namespaces of this machine (the e2e suites' workstation) reach it too.
  kind_config "$TP_KIND_NET_GATEWAY" >"$state/kind.yaml"
  kind create cluster --name "$name" --image "$TP_KIND_NODE_IMAGE" --config "$state/kind.yaml" \
    --kubeconfig "$kubeconfig" ${TP_KIND_KEEP:+--retain} >&2
  bash "$here/kind/network.sh" "$kubeconfig"
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=120s >&2
  kubectl --kubeconfig "$kubeconfig" -n kube-system rollout status deployment/coredns --timeout=120s >&2
  write_env "$TP_KIND_NET_GATEWAY"
  trap - EXIT
}

down_built() {
  local did=()
  if [ -S "$TP_KIND_DOCKER_SOCK" ] && docker version >/dev/null 2>&1; then
    if kind get clusters 2>/dev/null | grep -qx "$name"; then kind delete cluster --name "$name" >&2 && did+=("cluster $name"); fi
    local left
    left=$(docker ps -aq --filter label=io.x-k8s.kind.cluster)
    # shellcheck disable=SC2086
    [ -n "$left" ] && docker rm -f -v $left >/dev/null && did+=("containers")
    docker rm -f "$(docker ps -aq --filter name=tp-kind-node-build)" >/dev/null 2>&1 || true
    docker network rm kind >/dev/null 2>&1 && did+=("network kind")
    docker volume prune -f >/dev/null 2>&1 || true
  fi
  if [ -f "$TP_KIND_RUN/dockerd.pid" ]; then did+=("dockerd"); fi
  bash "$here/kind/dockerd.sh" stop
  if ip link show "$TP_KIND_NET_BRIDGE" >/dev/null 2>&1; then ip link del "$TP_KIND_NET_BRIDGE" && did+=("bridge $TP_KIND_NET_BRIDGE"); fi
  local mounts
  mounts=$(tp_mounts_under "$TP_KIND_RUN" "$TP_KIND_STATE" "$TP_KIND_DOCKER_ROOT")
  if [ -n "$mounts" ]; then
    echo "$mounts" | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    did+=("$(echo "$mounts" | wc -l) mounts")
  fi
  if [ -f "$state/made-lib-modules" ] && [ -d /lib/modules ]; then rmdir /lib/modules 2>/dev/null && did+=("/lib/modules"); fi
  if [ -d "$state" ] || [ -d "$TP_KIND_RUN" ]; then rm -rf "$state" "$TP_KIND_RUN" && did+=("state in $state and $TP_KIND_RUN"); fi
  if [ ${#did[@]} -eq 0 ]; then tp_log "no kind cluster was running; nothing to remove"; else tp_log "removed: $(IFS=,; echo "${did[*]}" | sed 's/,/, /g')"; fi
}

# Checks (does not assume) that nothing of the built kind cluster remains.
verify_built() {
  local bad=()
  [ -e "$TP_KIND_RUN" ] && bad+=("$TP_KIND_RUN exists")
  [ -e "$state" ] && bad+=("$state exists")
  local p
  for p in /proc/[0-9]*; do
    case $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") in
      *"$TP_KIND_RUN"* | *"$TP_KIND_DOCKER_ROOT"*) bad+=("process ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" | cut -c1-80)") ;;
    esac
  done
  for p in "$TP_KIND_BRIDGE" "$TP_KIND_NET_BRIDGE"; do ip link show "$p" >/dev/null 2>&1 && bad+=("interface $p"); done
  ip -o link show | grep -q "master $TP_KIND_NET_BRIDGE" && bad+=("veths on $TP_KIND_NET_BRIDGE")
  ip route | grep -qE "^(${TP_KIND_NET_SUBNET%/*}|${TP_KIND_POD_CIDR%/*}|${TP_KIND_SERVICE_CIDR%/*})" && bad+=("routes: $(ip route | grep -E "^(10\.25[01]|10\.112)" | tr '\n' ';')")
  [ -n "$(tp_mounts_under "$TP_KIND_RUN" "$TP_KIND_STATE" "$TP_KIND_DOCKER_ROOT")" ] && bad+=("mounts under $TP_KIND_RUN, $TP_KIND_STATE or $TP_KIND_DOCKER_ROOT")
  iptables-save 2>/dev/null | grep -q tpkind && bad+=("iptables rules naming tpkind")
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'left over: %s\n' "${bad[@]}" >&2
    return 1
  fi
  tp_log "verified: nothing of the kind cluster remains (the image cache in $TP_KIND_CACHE is kept)"
}

case ${1:-} in
  up)
    mkdir -p "$state"
    started=$(date +%s)
    if [ "$MODE" = kind ]; then up_kind; else up_built; fi
    echo "$MODE" >"$state/mode"
    tp_log "kind cluster $name is up in $(($(date +%s) - started))s ($MODE; state in $state)"
    echo "KUBECONFIG=$kubeconfig"
    ;;
  down)
    if [ "$MODE" = kind ]; then
      kind delete cluster --name "$name" >&2 || true
      rm -rf "$kubeconfig" "$state/cluster.env" "$state/kind.yaml" "$state/mode"
    else
      down_built
      if [ "${2:-}" = --verify ]; then verify_built; fi
    fi
    ;;
  load)
    shift
    [ $# -gt 0 ] || tp_die "no image given" "usage: npm run cluster:load-image -- IMAGE [IMAGE...]"
    if [ "$MODE" = built ]; then
      [ -S "$TP_KIND_DOCKER_SOCK" ] || tp_die "the kind cluster is not running (no dockerd at $TP_KIND_DOCKER_SOCK)" "run: TP_CLUSTER=kind npm run cluster:up"
      # The images are built by the machine's Docker; kind loads from its own dockerd.
      for image in "$@"; do
        want=$(DOCKER_HOST='' docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) \
          || tp_die "image $image does not exist in the local Docker engine" "build it first (bash test/cluster/images/build.sh NAME)"
        if [ "$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" != "$want" ]; then
          DOCKER_HOST='' docker save "$image" | docker load -q >/dev/null
        fi
      done
    fi
    kind load docker-image --name "$name" "$@" >&2
    ;;
  *) tp_die "usage: kind.sh up | down [--verify] | load IMAGE..." ;;
esac
