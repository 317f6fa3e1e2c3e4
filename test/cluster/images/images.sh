# shellcheck shell=bash disable=SC2034
# The test-cluster images: short names, references, build order. Sourced by build.sh and
# save.sh (and usable by other harness scripts). Requires lib/versions.sh to be sourced.

# Dependency order: every image comes after the images it is built FROM.
TP_IMAGE_NAMES=(base-debian base-node pause echo coredns traffic-manager agent-injector traffic-agent)

# The product's version: the tag of its three cluster images.
# TP_PRODUCT_VERSION tags the product's images with another version (a second build beside this one).
tp_product_version() { [ -z "${TP_PRODUCT_VERSION:-}" ] || { echo "$TP_PRODUCT_VERSION"; return; }; sed -n 's/^  "version": "\(.*\)",$/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../../package.json" | head -n 1; }

# Short name -> image reference. Prints nothing and fails for an unknown name.
tp_image_ref() {
  case "$1" in
    base-debian) echo "tp-local/base-debian:bookworm" ;;
    base-node) echo "tp-local/base-node:bookworm" ;;
    pause) echo "tp-local/pause:3.10" ;;
    coredns) echo "tp-local/coredns:${COREDNS_VERSION:?COREDNS_VERSION unset: source test/cluster/lib/versions.sh}" ;;
    echo) echo "tp-local/echo:1" ;;
    traffic-manager | agent-injector | traffic-agent) echo "tp-local/$1:$(tp_product_version)" ;;
    *) return 1 ;;
  esac
}

# Short name -> the short names it is built FROM (space separated).
tp_image_deps() {
  case "$1" in
    base-node) echo "base-debian" ;;
    echo | traffic-manager | agent-injector | traffic-agent) echo "base-node" ;;
    *) echo "" ;;
  esac
}

# The image label that records the hash of everything an image was built from.
TP_IMAGE_HASH_LABEL=dev.telepresence-ts.input-hash
