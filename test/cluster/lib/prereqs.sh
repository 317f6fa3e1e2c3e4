# Checks what a cluster needs from the machine before anything is started, so that a missing
# piece is named up front instead of half-way through a start.
# shellcheck shell=bash

# Debian packages the local cluster needs, with the command that proves each is present.
TP_DEB_PACKAGES="etcd-server:etcd containerd:containerd runc:runc containernetworking-plugins:/usr/lib/cni/bridge iptables:iptables openssl:openssl iproute2:ss conntrack:conntrack curl:curl"

tp_missing_packages() {
  local entry pkg probe missing=()
  for entry in $TP_DEB_PACKAGES; do
    pkg=${entry%%:*}
    probe=${entry#*:}
    if [ "${probe#/}" != "$probe" ]; then [ -e "$probe" ] || missing+=("$pkg"); else command -v "$probe" >/dev/null || missing+=("$pkg"); fi
  done
  echo "${missing[*]}"
}

tp_check_prereqs() {
  [ "$(id -u)" = 0 ] || tp_die "the local cluster must be started as root (it runs a kubelet, writes iptables rules and creates network interfaces)" "run it with sudo"
  [ "$(uname -s)" = Linux ] || tp_die "the local cluster runs only on Linux" "use TP_CLUSTER=kind on other systems"
  local missing
  missing=$(tp_missing_packages)
  [ -z "$missing" ] || tp_die "missing Debian packages: $missing" "apt-get update && apt-get install -y $missing   (or run: bash scripts/install-deps.sh)"
  command -v kubectl >/dev/null || tp_die "kubectl is not installed" "install kubectl 1.32 or newer (Debian: apt-get install kubernetes-client), or run: bash scripts/install-deps.sh"
  if [ ! -f "$TP_K8S_BIN/.complete" ]; then
    command -v go >/dev/null || tp_die "the Kubernetes binaries are not built yet and Go is not installed" "install Go 1.24 or newer (https://go.dev/dl), then retry; binaries are cached in $TP_K8S_BIN"
  fi
  [ -d /sys/fs/cgroup ] || tp_die "no cgroup file system at /sys/fs/cgroup" "mount cgroups (v1 or v2) before starting a kubelet"
  local name port busy=()
  for name in ETCD ETCD_PEER APISERVER KUBELET KUBELET_HEALTHZ PROXY_METRICS PROXY_HEALTHZ CONTROLLER_MANAGER SCHEDULER; do
    port=$(eval echo "\$TP_PORT_$name")
    if tp_port_in_use "$port"; then busy+=("$port ($(echo "$name" | tr 'A-Z_' 'a-z-'); used by $(ss -Hltnp "sport = :$port" | grep -o 'users:(("[^"]*"' | head -1 | cut -d'"' -f2))"); fi
  done
  [ ${#busy[@]} -eq 0 ] || tp_die "ports the cluster needs are already in use: ${busy[*]}" "stop what listens there (another Kubernetes? run: npm run cluster:down), then retry"
  if ip link show "$TP_CNI_IF" >/dev/null 2>&1 || ip link show "$TP_SINK_IF" >/dev/null 2>&1 || [ -d "$TP_RUN" ] || [ -d "$TP_STATE/etcd" ]; then
    tp_die "a previous cluster was not shut down cleanly (found leftovers of it in $TP_STATE, $TP_RUN or interface $TP_SINK_IF/$TP_CNI_IF)" "run: npm run cluster:down   then retry"
  fi
}
