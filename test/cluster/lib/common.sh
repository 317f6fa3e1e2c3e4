# Shared settings and helpers of the cluster harness. Sourced by up.sh, down.sh and friends.
# shellcheck shell=bash
_tp_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$_tp_lib/versions.sh"
TP_REPO=$(cd "$_tp_lib/../../.." && pwd)

# Where the running cluster keeps its data (certificates, etcd, kubelet, containerd, logs).
# Everything below these two folders is removed by down.sh.
TP_STATE=${TP_STATE:-/var/lib/tp-cluster}
TP_RUN=${TP_RUN:-/run/tp-cluster}
TP_LOGS=$TP_STATE/logs
TP_PIDS=$TP_RUN/pids

# Network layout. All of it is private to this machine:
# - the node's address lives on a port-less bridge (TP_SINK_IF), so it is local and reachable
#   from pods through their gateway, but is never on any physical link;
# - the service range and the whole pod range are routed into that same bridge, which drops
#   whatever is sent to it: before kube-proxy has written its rules, and for any address no
#   pod holds, packets die here instead of following the default route off the machine;
# - the node's own pod subnet is more specific, so it reaches the pods on TP_CNI_IF.
TP_NODE_NAME=${TP_NODE_NAME:-tp-node}
TP_NODE_IP=10.243.255.1
TP_SINK_IF=tp-sink0
TP_CNI_IF=tp-cni0
TP_SERVICE_CIDR=10.96.0.0/16
TP_KUBERNETES_SVC_IP=10.96.0.1
TP_DNS_IP=10.96.0.10
TP_POD_CIDR=10.244.0.0/16
TP_NODE_POD_CIDR=10.244.0.0/24
TP_CLUSTER_DOMAIN=cluster.local

# Ports the host processes bind. up.sh checks that each is free before it starts anything.
TP_PORT_ETCD=2379
TP_PORT_ETCD_PEER=2380
TP_PORT_APISERVER=6443
TP_PORT_KUBELET=10250
TP_PORT_KUBELET_HEALTHZ=10248
TP_PORT_PROXY_METRICS=10249
TP_PORT_PROXY_HEALTHZ=10256
TP_PORT_CONTROLLER_MANAGER=10257
TP_PORT_SCHEDULER=10259

TP_CONTAINERD_SOCK=$TP_RUN/containerd/containerd.sock
TP_ADMIN_KUBECONFIG=$TP_STATE/admin.kubeconfig
TP_CLUSTER_ENV=$TP_STATE/cluster.env
TP_PAUSE_IMAGE=tp-local/pause:3.10
TP_COREDNS_IMAGE=tp-local/coredns:$COREDNS_VERSION

tp_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
tp_die() {
  printf 'error: %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf 'hint:  %s\n' "$2" >&2
  exit 1
}

# Polls a command until it succeeds or the deadline passes. Usage: tp_wait SECONDS WHAT CMD...
tp_wait() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tp_log "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

tp_kubectl() { kubectl --kubeconfig "$TP_ADMIN_KUBECONFIG" "$@"; }

# Starts a long-running host process detached from the calling shell, logging to
# $TP_LOGS/NAME.log and remembering its pid in $TP_PIDS/NAME.pid.
tp_start() {
  local name=$1
  shift
  mkdir -p "$TP_LOGS" "$TP_PIDS"
  setsid "$@" >>"$TP_LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$TP_PIDS/$name.pid"
}

tp_pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

tp_port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Every mount point below the given folders, deepest first.
tp_mounts_under() {
  local dir
  for dir in "$@"; do
    awk -v p="$dir" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts
  done | sort -r -u
}
