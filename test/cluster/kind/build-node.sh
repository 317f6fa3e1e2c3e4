#!/usr/bin/env bash
# Assembles the kind node image (tp-local/kind-node:<Kubernetes version>) in the kind dockerd
# when kind's published node image cannot be pulled, the way `kind build node-image` does but
# offline: a container from the Debian-based node base (node/Dockerfile), the Kubernetes
# binaries in /usr/bin, /kind/version, the control-plane, kube-proxy, CoreDNS and pause images
# imported into the node's containerd, then `docker commit`. Skipped when the image already
# carries the hash of all its inputs. Needs dockerd.sh started and build-tools.sh run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=versions.sh
. "$here/versions.sh"
kdocker() { docker --host "unix://$TP_KIND_DOCKER_SOCK" "$@" 2> >(grep -v -e "legacy builder is deprecated" -e "buildx" -e "^ *$" >&2); }
label=dev.telepresence-ts.input-hash
sha() { sha256sum | cut -c1-16; }
has_hash() { [ "$(kdocker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null)" = "$2" ]; }

# The harness's own images and binaries: the Debian base, pause, CoreDNS, the Kubernetes servers.
if [ ! -f "$TP_K8S_BIN/.complete" ]; then
  tp_log "building Kubernetes $K8S_VERSION and CoreDNS $COREDNS_VERSION (cached in $TP_K8S_BIN)"
  bash "$here/../k8s-build/build.sh" "$TP_K8S_BIN" >&2
fi
bash "$here/../images/build.sh" base-debian pause coredns >&2
base=tp-local/base-debian:bookworm
# Images move from the harness's Docker into the kind dockerd by save | load.
copy_image() {
  local want
  want=$(docker image inspect -f '{{.Id}}' "$1")
  [ "$(kdocker image inspect -f '{{.Id}}' "$1" 2>/dev/null)" = "$want" ] && return 0
  docker save "$1" | kdocker load -q >/dev/null
}
for image in "$base" "$TP_PAUSE_IMAGE" "$TP_COREDNS_IMAGE"; do copy_image "$image"; done

# The names kubeadm gives the images of this Kubernetes version.
images=$("$TP_KIND_K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
image_for() { grep -m1 "/$1:" <<<"$images"; }
case $(image_for etcd) in
  *":${KIND_ETCD_VERSION#v}-"*) ;;
  *) tp_die "kubeadm $K8S_VERSION runs $(image_for etcd), not etcd $KIND_ETCD_VERSION" "set KIND_ETCD_VERSION in test/cluster/kind/versions.sh to its version" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/tp-kind-node.XXXXXX")
builder=""
cleanup() {
  [ -n "$builder" ] && kdocker rm -f "$builder" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The node base.
base_id=$(kdocker image inspect -f '{{.Id}}' "$base")
node_base_hash=$({ echo "$base_id"; cat "$here/node/Dockerfile" "$here"/node/files/*; } | sha)
if ! has_hash tp-local/kind-base:bookworm "$node_base_hash"; then
  tp_log "building the kind node base from Debian packages"
  kdocker build -q --network host --build-arg "BASE_IMAGE=$base" --label "$label=$node_base_hash" \
    -t tp-local/kind-base:bookworm "$here/node" >/dev/null
fi

# 2. The images kubeadm runs, under kubeadm's names.
for program in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do cp "$TP_K8S_BIN/$program" "$work/"; done
cp "$TP_KIND_ETCD_BIN/etcd" "$work/"
for program in kube-apiserver kube-controller-manager kube-scheduler etcd kube-proxy; do
  ref=$(image_for "$program")
  if [ "$program" = kube-proxy ]; then
    h=$({ echo "$base_id"; cat "$work/$program" "$here/images/Dockerfile.kube-proxy"; } | sha)
    has_hash "$ref" "$h" || kdocker build -q --network host --build-arg "BASE_IMAGE=$base" --label "$label=$h" \
      -f "$here/images/Dockerfile.kube-proxy" -t "$ref" "$work" >/dev/null
  else
    h=$(cat "$work/$program" "$here/images/Dockerfile.control-plane" | sha)
    has_hash "$ref" "$h" || kdocker build -q --build-arg "PROGRAM=$program" --label "$label=$h" \
      -f "$here/images/Dockerfile.control-plane" -t "$ref" "$work" >/dev/null
  fi
done
kdocker tag "$TP_PAUSE_IMAGE" "$(image_for pause)"
kdocker tag "$TP_COREDNS_IMAGE" "$(image_for coredns)"
mapfile -t refs <<<"$images"

# 3. The node image.
node_hash=$({
  kdocker image inspect -f '{{.Id}}' tp-local/kind-base:bookworm "${refs[@]}"
  cat "$TP_K8S_BIN/kubelet" "$TP_KIND_K8S_BIN/kubeadm" "$TP_KIND_K8S_BIN/kubectl" "$0" | sha
} | sha)
if has_hash "$TP_KIND_NODE_IMAGE" "$node_hash"; then
  tp_log "node image $TP_KIND_NODE_IMAGE is up to date"
  exit 0
fi
tp_log "assembling the node image $TP_KIND_NODE_IMAGE"
builder=tp-kind-node-build-$$
# /var/lib/containerd as a volume: overlayfs cannot be stacked on the container's own overlay.
kdocker run -d --name "$builder" --privileged --entrypoint sleep tp-local/kind-base:bookworm infinity >/dev/null
for program in kubelet kubeadm kubectl; do
  src=$TP_K8S_BIN/$program
  [ -x "$src" ] || src=$TP_KIND_K8S_BIN/$program
  kdocker cp "$src" "$builder:/usr/bin/$program"
done
kdocker exec "$builder" sh -c "echo $K8S_VERSION >/kind/version"
# containerd runs only while the images are imported; --no-unpack leaves the unpacking (which
# needs a non-overlay /var) to the running node.
kdocker exec -d "$builder" sh -c 'containerd >/tmp/containerd.log 2>&1'
tp_wait 30 "containerd in the node build" kdocker exec "$builder" ctr version
kdocker save "${refs[@]}" | kdocker exec -i "$builder" ctr -n k8s.io images import --no-unpack --all-platforms --digests - >/dev/null
kdocker exec "$builder" sh -c 'pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.2; done; rm -f /tmp/containerd.log'
kdocker commit --change "LABEL $label=$node_hash" \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  "$builder" "$TP_KIND_NODE_IMAGE" >/dev/null
# The images this one replaced (now untagged) are only disk.
kdocker image prune -f --filter "label=$label" >/dev/null
tp_log "node image $TP_KIND_NODE_IMAGE built"
