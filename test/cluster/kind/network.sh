#!/usr/bin/env bash
# Pod networking of a kind cluster built by the kind back end, host-gw style and without any
# component in the cluster: on every node a bridge CNI config for the node's own pod range, a
# route to each other node's pod range through that node, and masquerading of pod traffic that
# leaves the pod network (to this machine, say), whose replies would otherwise find no route.
# Usage: network.sh KUBECONFIG   (with DOCKER_HOST naming the kind dockerd)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=versions.sh
. "$here/versions.sh"
kubeconfig=$1
kctl() { "$TP_KIND_K8S_BIN/kubectl" --kubeconfig "$kubeconfig" "$@"; }

# name podCIDR InternalIP, one node a line (the controller-manager assigns the pod ranges).
nodes() {
  kctl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}'
}
all_have_ranges() { nodes | awk 'NF < 3 { bad = 1 } END { exit bad }'; }
tp_wait 60 "a pod range on every node" all_have_ranges || true
mapfile -t all < <(nodes)
for line in "${all[@]}"; do
  read -r name cidr _ <<<"$line"
  [ -n "$cidr" ] || tp_die "node $name has no pod range" "check the controller-manager (--allocate-node-cidrs)"
  routes=""
  for other in "${all[@]}"; do
    read -r oname ocidr oip <<<"$other"
    [ "$oname" = "$name" ] || routes+="ip route replace $ocidr via $oip; "
  done
  docker exec -i "$name" sh -euc "
    cat >/etc/cni/net.d/10-tp-kind.conflist
    $routes
    iptables -t nat -C POSTROUTING -s $TP_KIND_POD_CIDR ! -d $TP_KIND_POD_CIDR -j MASQUERADE 2>/dev/null \
      || iptables -t nat -A POSTROUTING -s $TP_KIND_POD_CIDR ! -d $TP_KIND_POD_CIDR -j MASQUERADE
    sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "tp-kind",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$cidr" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  tp_log "node $name: pods $cidr"
done
