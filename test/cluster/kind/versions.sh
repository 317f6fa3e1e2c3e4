# shellcheck shell=bash disable=SC2034
# Pinned versions and cache folders of the kind back end (TP_CLUSTER=kind) when it builds what it
# needs itself. Sourced after lib/common.sh.
KIND_VERSION=${TP_KIND_VERSION:-v0.30.0}
# The etcd kubeadm $K8S_VERSION names (`kubeadm config images list`; build-node.sh checks);
# Debian's etcd 3.4 lacks the /livez and /readyz that kubeadm probes.
KIND_ETCD_VERSION=${TP_KIND_ETCD_VERSION:-v3.5.24}
TP_KIND_CACHE=${TP_KIND_CACHE:-$TP_CACHE/kind}
TP_KIND_BIN=$TP_KIND_CACHE/kind-$KIND_VERSION/bin
TP_KIND_K8S_BIN=$TP_KIND_CACHE/k8s-$K8S_VERSION/bin
TP_KIND_ETCD_BIN=$TP_KIND_CACHE/etcd-$KIND_ETCD_VERSION/bin

# Where a built kind cluster keeps its state; apart from the local cluster's /var/lib/tp-cluster
# so that both can run at once. The dockerd's images are a cache and outlive `down`.
TP_KIND_STATE=${TP_KIND_STATE:-/var/lib/tp-kind}
TP_KIND_RUN=${TP_KIND_RUN:-/run/tp-kind}
TP_KIND_DOCKER_SOCK=$TP_KIND_RUN/docker.sock
TP_KIND_DOCKER_ROOT=$TP_KIND_CACHE/docker

# Networks apart from the local cluster's (lib/common.sh: pods 10.244.0.0/16, services
# 10.96.0.0/16, node 10.243.255.1) and from Docker's usual 172.17.0.0/16.
TP_KIND_POD_CIDR=10.250.0.0/16
TP_KIND_SERVICE_CIDR=10.112.0.0/16
TP_KIND_BRIDGE=tpkind0            # the dockerd's default bridge (no container uses it)
TP_KIND_BRIDGE_CIDR=10.251.255.1/24
TP_KIND_NET_BRIDGE=tpkind1        # the "kind" network, the nodes' bridge
TP_KIND_NET_SUBNET=10.251.0.0/24
TP_KIND_NET_GATEWAY=10.251.0.1
TP_KIND_ADDRESS_POOL=10.251.0.0/16

# The node image assembled here, and the names kubeadm looks for in the node's containerd.
TP_KIND_NODE_IMAGE=tp-local/kind-node:$K8S_VERSION
