#!/usr/bin/env bash
# Brings up a real single-node Kubernetes on this machine and prints KUBECONFIG=<path> last.
#
#   TP_CLUSTER=local (default)  etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                               containerd + runc, kubelet, kube-proxy as host processes; CNI
#                               bridge networking; CoreDNS in the cluster.
#   TP_CLUSTER=kind             a kind cluster (needs kind and a Docker engine with its node image).
#
# On any failure, everything started so far is torn down again (see down.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

if [ "${TP_CLUSTER:-local}" = kind ]; then exec bash "$here/kind.sh" up; fi
[ "${TP_CLUSTER:-local}" = local ] || tp_die "unknown TP_CLUSTER=$TP_CLUSTER" "use TP_CLUSTER=local (default) or TP_CLUSTER=kind"

# shellcheck source=lib/prereqs.sh
. "$here/lib/prereqs.sh"
# shellcheck source=lib/pki.sh
. "$here/lib/pki.sh"

started=$(date +%s)

# An `up` against a healthy running cluster is a no-op that prints the same last line.
if [ -f "$TP_CLUSTER_ENV" ] && tp_pid_alive "$TP_PIDS/kube-apiserver.pid" \
  && tp_kubectl get --raw /readyz >/dev/null 2>&1; then
  tp_log "cluster is already up"
  echo "KUBECONFIG=$TP_ADMIN_KUBECONFIG"
  exit 0
fi

tp_check_prereqs

# Build before touching the machine, so a failed build leaves nothing to clean up.
if [ ! -f "$TP_K8S_BIN/.complete" ]; then
  tp_log "building Kubernetes $K8S_VERSION and CoreDNS $COREDNS_VERSION (first run only; cached in $TP_K8S_BIN)"
  bash "$here/k8s-build/build.sh" "$TP_K8S_BIN" >&2
fi

cleanup_on_failure() {
  local rc=$?
  [ $rc -eq 0 ] && return
  tp_log "start failed; the last lines of each log:"
  for f in "$TP_LOGS"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 8 "$f" >&2; }; done
  tp_log "removing what was started"
  cp -r "$TP_LOGS" "/tmp/tp-cluster-failed-logs.$$" 2>/dev/null && tp_log "logs kept in /tmp/tp-cluster-failed-logs.$$"
  bash "$here/down.sh" >&2 || true
  exit $rc
}
trap cleanup_on_failure EXIT

mkdir -p "$TP_STATE" "$TP_RUN" "$TP_LOGS" "$TP_PIDS"
chmod 700 "$TP_STATE"

tp_log "network: node $TP_NODE_IP, services $TP_SERVICE_CIDR, pods $TP_POD_CIDR (all routed into $TP_SINK_IF, never off the machine)"
# Remember the sysctls we change so that down.sh can put them back.
for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
  echo "$key=$(sysctl -n "$key" 2>/dev/null || echo)" >>"$TP_STATE/sysctl.saved"
done
sysctl -qw net.ipv4.ip_forward=1
# Service traffic between two pods on the same bridge must pass iptables for kube-proxy's DNAT.
sysctl -qw net.bridge.bridge-nf-call-iptables=1 || tp_die "net.bridge.bridge-nf-call-iptables cannot be set" "load the br_netfilter kernel module (modprobe br_netfilter)"
sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 || true

ip link add "$TP_SINK_IF" type bridge
ip link set "$TP_SINK_IF" up
ip addr add "$TP_NODE_IP/32" dev "$TP_SINK_IF"
ip route add "$TP_SERVICE_CIDR" dev "$TP_SINK_IF"
ip route add "$TP_POD_CIDR" dev "$TP_SINK_IF"

# Pods may talk to each other, to services and to the node, and nothing else: a FORWARD rule
# drops pod traffic headed for any other interface. Docker sets FORWARD's policy to DROP, so
# bridged pod-to-pod traffic (which passes iptables through br_netfilter) is accepted here.
for ipt in iptables; do
  $ipt -w -N TP-CLUSTER-FORWARD
  $ipt -w -A TP-CLUSTER-FORWARD -i "$TP_CNI_IF" -o "$TP_CNI_IF" -j ACCEPT
  $ipt -w -A TP-CLUSTER-FORWARD -s "$TP_POD_CIDR" ! -o "$TP_CNI_IF" -j DROP
  $ipt -w -A TP-CLUSTER-FORWARD -o "$TP_CNI_IF" -d "$TP_POD_CIDR" -j ACCEPT
  $ipt -w -I FORWARD 1 -j TP-CLUSTER-FORWARD
done

tp_log "certificates"
tp_pki_all
pki=$TP_STATE/pki

tp_log "etcd"
tp_start etcd etcd --name tp-etcd --data-dir "$TP_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$TP_PORT_ETCD" --advertise-client-urls "http://127.0.0.1:$TP_PORT_ETCD" \
  --listen-peer-urls "http://127.0.0.1:$TP_PORT_ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$TP_PORT_ETCD_PEER" \
  --initial-cluster "tp-etcd=http://127.0.0.1:$TP_PORT_ETCD_PEER" --unsafe-no-fsync
tp_wait 30 etcd curl -fsS "http://127.0.0.1:$TP_PORT_ETCD/health"

tp_log "kube-apiserver"
tp_start kube-apiserver "$TP_K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$TP_PORT_ETCD" \
  --bind-address "$TP_NODE_IP" --advertise-address "$TP_NODE_IP" --secure-port "$TP_PORT_APISERVER" \
  --service-cluster-ip-range "$TP_SERVICE_CIDR" \
  --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer "https://kubernetes.default.svc.$TP_CLUSTER_DOMAIN" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --enable-aggregator-routing=true \
  --kubelet-preferred-address-types InternalIP \
  --profiling=false
tp_wait 60 kube-apiserver tp_kubectl get --raw /readyz

tp_log "kube-controller-manager, kube-scheduler"
tp_start kube-controller-manager "$TP_K8S_BIN/kube-controller-manager" \
  --kubeconfig "$TP_STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$TP_STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$TP_STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$TP_PORT_CONTROLLER_MANAGER" --leader-elect=false \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" --use-service-account-credentials=true \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr "$TP_POD_CIDR" --node-cidr-mask-size 24 --service-cluster-ip-range "$TP_SERVICE_CIDR"
tp_start kube-scheduler "$TP_K8S_BIN/kube-scheduler" \
  --kubeconfig "$TP_STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$TP_STATE/scheduler.kubeconfig" --authorization-kubeconfig "$TP_STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$TP_PORT_SCHEDULER" --leader-elect=false

tp_log "containerd"
mkdir -p "$TP_STATE/cni/net.d" "$TP_RUN/containerd"
cat >"$TP_STATE/cni/net.d/10-tp-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "tp-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$TP_CNI_IF", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$TP_STATE/cni/ipam",
        "ranges": [[{ "subnet": "$TP_NODE_POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
cat >"$TP_STATE/containerd.toml" <<TOML
version = 2
root = "$TP_STATE/containerd"
state = "$TP_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$TP_CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$TP_STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$TP_PAUSE_IMAGE"
  # Keeps pod network namespaces below our state folder, so down.sh finds all of them.
  netns_mounts_under_state_dir = true
  # Lowering an OOM score below 0 needs CAP_SYS_RESOURCE, which sandboxed hosts (this project's
  # CI among them) withhold even from root; runc then fails with "can't get final child's PID
  # from pipe". This clamps every pod's score at containerd's own instead.
  restrict_oom_score_adj = true
  # One folder per registry host, each with a hosts.toml, read at every pull (so a registry is
  # added without a restart): test/cluster/registry.sh writes the local registry's.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$TP_STATE/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${TP_RUNC:-$(command -v runc)}"
        Root = "$TP_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$TP_STATE/cni/net.d"
TOML
tp_start containerd containerd --config "$TP_STATE/containerd.toml"
tp_wait 30 containerd ctr --address "$TP_CONTAINERD_SOCK" version

tp_log "images: pause and coredns"
bash "$TP_REPO/test/cluster/images/build.sh" pause coredns >&2
for image in "$TP_PAUSE_IMAGE" "$TP_COREDNS_IMAGE"; do
  bash "$here/load-image.sh" "$image" >&2
done

tp_log "kubelet"
printf 'search %s\n' "$TP_CLUSTER_DOMAIN" >"$TP_STATE/resolv.conf"
cat >"$TP_STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $TP_NODE_IP
port: $TP_PORT_KUBELET
healthzBindAddress: 127.0.0.1
healthzPort: $TP_PORT_KUBELET_HEALTHZ
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$TP_DNS_IP]
clusterDomain: $TP_CLUSTER_DOMAIN
resolvConf: $TP_STATE/resolv.conf
containerRuntimeEndpoint: unix://$TP_CONTAINERD_SOCK
# Images are loaded by hand and can never be pulled again: never garbage-collect them, and do
# not evict pods because the disk of a development machine is fuller than a server's would be.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
YAML
tp_start kubelet "$TP_K8S_BIN/kubelet" --config "$TP_STATE/kubelet.yaml" \
  --kubeconfig "$TP_STATE/kubelet.kubeconfig" --root-dir "$TP_STATE/kubelet" --cert-dir "$TP_STATE/kubelet/pki" \
  --hostname-override "$TP_NODE_NAME" --node-ip "$TP_NODE_IP"

tp_log "kube-proxy"
cat >"$TP_STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $TP_STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $TP_POD_CIDR
hostnameOverride: $TP_NODE_NAME
bindAddress: $TP_NODE_IP
healthzBindAddress: 127.0.0.1:$TP_PORT_PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$TP_PORT_PROXY_METRICS
# Leave the host's conntrack table size alone: a shared machine's setting is not ours to change.
conntrack: {maxPerCore: 0}
YAML
tp_start kube-proxy "$TP_K8S_BIN/kube-proxy" --config "$TP_STATE/kube-proxy.yaml"

tp_wait 90 "node $TP_NODE_NAME to be Ready" \
  tp_kubectl wait --for=condition=Ready "node/$TP_NODE_NAME" --timeout=5s

tp_log "CoreDNS"
sed -e "s|@IMAGE@|$TP_COREDNS_IMAGE|g" -e "s|@DNS_IP@|$TP_DNS_IP|g" -e "s|@DOMAIN@|$TP_CLUSTER_DOMAIN|g" \
  "$here/manifests/coredns.yaml" | tp_kubectl apply -f - >/dev/null
tp_wait 30 "the default service account" tp_kubectl -n default get serviceaccount default
tp_kubectl -n kube-system rollout status deployment/coredns --timeout=90s >&2

cat >"$TP_CLUSTER_ENV" <<ENV
KUBECONFIG=$TP_ADMIN_KUBECONFIG
TP_CLUSTER=local
TP_HOST_ADDRESS=$TP_NODE_IP
TP_NODE_NAME=$TP_NODE_NAME
ENV
trap - EXIT
tp_log "cluster is up in $(($(date +%s) - started))s (logs: $TP_LOGS)"
echo "KUBECONFIG=$TP_ADMIN_KUBECONFIG"
