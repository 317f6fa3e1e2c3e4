#!/usr/bin/env bash
# Writes `docker save` of the given images to stdout, for example:
#   test/cluster/images/save.sh tp-local/pause:3.10 tp-local/echo:1 | ctr -n k8s.io images import -
# IMAGE is an image reference or a short name of build.sh (pause, echo, coredns, ...).
# Fails with a clear message, before writing anything, if an image is missing.
# Note: containerd normalizes "tp-local/echo:1" to "docker.io/tp-local/echo:1".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/versions.sh
. "$here/../lib/versions.sh"
# shellcheck source=../lib/docker.sh
. "$here/../lib/docker.sh"
# shellcheck source=images.sh
. "$here/images.sh"

if [ "$#" -eq 0 ]; then
  echo "usage: $0 IMAGE... > images.tar   (IMAGE: a reference, or one of: ${TP_IMAGE_NAMES[*]})" >&2
  exit 2
fi
if [ -t 1 ]; then
  echo "error: refusing to write an image tarball to a terminal; redirect or pipe stdout" >&2
  exit 2
fi

tp_ensure_dockerd

refs=() missing=0
for arg in "$@"; do
  ref=$arg
  if short=$(tp_image_ref "$arg"); then ref=$short; fi
  if ! docker image inspect "$ref" >/dev/null 2>&1; then
    name=""
    for n in "${TP_IMAGE_NAMES[@]}"; do
      if [ "$(tp_image_ref "$n")" = "$ref" ]; then name=$n; fi
    done
    if [ -n "$name" ]; then
      echo "error: image $ref not found; build it with: test/cluster/images/build.sh $name" >&2
    else
      echo "error: image $ref not found in the local Docker daemon" >&2
    fi
    missing=1
  fi
  refs+=("$ref")
done
[ "$missing" = 0 ] || exit 1

exec docker save "${refs[@]}"
