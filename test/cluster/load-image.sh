#!/usr/bin/env bash
# Makes locally built Docker images available to the cluster's node(s) without a registry.
# Usage: npm run cluster:load-image -- IMAGE [IMAGE...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
[ $# -gt 0 ] || tp_die "no image given" "usage: npm run cluster:load-image -- IMAGE [IMAGE...]   e.g. tp-local/echo:1"
if [ "${TP_CLUSTER:-local}" = kind ]; then exec bash "$here/kind.sh" load "$@"; fi
[ -S "$TP_CONTAINERD_SOCK" ] || tp_die "the local cluster is not running (no containerd at $TP_CONTAINERD_SOCK)" "run: npm run cluster:up"
# shellcheck source=lib/docker.sh
. "$here/lib/docker.sh"
tp_ensure_dockerd
for image in "$@"; do
  docker image inspect "$image" >/dev/null 2>&1 || tp_die "image $image does not exist in the local Docker engine" "build it first (docker build -t $image ..., or bash test/cluster/images/build.sh NAME)"
  docker save "$image" | ctr --address "$TP_CONTAINERD_SOCK" -n k8s.io images import - >/dev/null
  tp_log "loaded $image"
done
