# Pinned versions and cache locations for the test cluster. Sourced by the harness scripts.
#
# Kubernetes 1.33: its kubelet still starts on a cgroup v1 host by default (`failCgroupV1`
# only defaults to true from 1.35), every one of its staging modules is on the Go module
# proxy, and kubectl 1.32 (one minor behind) is within the supported version skew.
K8S_VERSION=${TP_K8S_VERSION:-v1.33.13}
COREDNS_VERSION=${TP_COREDNS_VERSION:-v1.14.7}
# The Node.js in the cluster images (base-node): the official Linux build, as the public default
# base (node:20-bookworm-slim) carries, taken from the npm registry's node-linux-<arch> package.
NODE_VERSION=${TP_NODE_VERSION:-20.20.2}
# The other Node.js line the released CLI supports (engines: node >= 20.19): the npm package's
# e2e suite runs the installed CLI and its daemon on it too (lib/node-dist.sh fetches it).
NODE_OTHER_VERSION=${TP_NODE_OTHER_VERSION:-22.23.5}
TP_CACHE=${TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telepresence-ts}
TP_K8S_BIN=${TP_K8S_BIN:-$TP_CACHE/k8s-$K8S_VERSION-coredns-$COREDNS_VERSION/bin}
