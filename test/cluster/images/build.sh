#!/usr/bin/env bash
# Builds the images the test cluster runs, with the local Docker daemon, without pulling
# anything from a registry (none is reachable): the Debian bases come from debootstrap and
# the Debian package mirror, everything else is built FROM them or FROM scratch.
#
# usage: test/cluster/images/build.sh NAME...     (NAME: see TP_IMAGE_NAMES in images.sh, or "all")
#
#   base-debian  tp-local/base-debian:bookworm  debootstrap minbase + a few packages, `docker import`ed
#   base-node    tp-local/base-node:bookworm    base-debian + the official Node.js build ($NODE_VERSION)
#   pause        tp-local/pause:3.10            pod sandbox: static pause.c, FROM scratch
#   echo         tp-local/echo:1                test/fixtures/echo-server on base-node
#   coredns      tp-local/coredns:$COREDNS_VERSION  $TP_K8S_BIN/coredns, FROM scratch
#   traffic-manager, agent-injector, traffic-agent   tp-local/<name>:<product version>
#                the product's cluster images: cluster/dist/*.js (npm run build) on base-node
#                ($TP_PRODUCT_DIR and $TP_PRODUCT_VERSION build them from another folder, tagged
#                with another version)
#
# The images an image is built FROM are built first (so `build.sh echo` also makes the
# bases). Each image is skipped when it already carries the hash of all its inputs in the
# label dev.telepresence-ts.input-hash (the hash covers its files, its parent image's id
# and its build settings). The debootstrapped rootfs is cached as a tarball under
# $TP_CACHE/images/, keyed by suite, package list and finalize.sh, so a machine that has the
# cache never debootstraps again. Build output goes to $TP_CACHE/images/logs/NAME.log; one
# line per image is printed. Exit status is non-zero if any requested image failed.
#
# Settings (environment): TP_DEBIAN_MIRROR, TP_DEBIAN_SECURITY_MIRROR (default: read from
# the host's apt sources), TP_IMAGES_FORCE=1 (rebuild even when up to date; the rootfs
# tarball cache is still used), plus those of lib/versions.sh and lib/docker.sh.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib/versions.sh
. "$here/../lib/versions.sh"
# shellcheck source=../lib/docker.sh
. "$here/../lib/docker.sh"
# shellcheck source=images.sh
. "$here/images.sh"
# shellcheck source=../lib/node-dist.sh
. "$here/../lib/node-dist.sh"

# The docker CLI here may be newer than the daemon (Debian's dockerd 20.10) and come
# without the buildx plugin; since Docker 23 the CLI then refuses to build with BuildKit
# ("BuildKit is enabled but the buildx component is missing"). The classic builder is
# built into every dockerd and is all these simple Dockerfiles need.
export DOCKER_BUILDKIT=0

SUITE=bookworm
BASE_VARIANT=minbase
BASE_PACKAGES=ca-certificates,iptables,openssh-sftp-server,procps,iproute2
PAUSE_CFLAGS=(-static -Os -s -std=c11 -Wall -Wextra -Werror)

img_cache="$TP_CACHE/images"
log_dir="$img_cache/logs"

usage() {
  echo "usage: $0 NAME... | all" >&2
  echo "valid names: ${TP_IMAGE_NAMES[*]} (or all)" >&2
}

# ---------------------------------------------------------------------------------------
# helpers

sha() { sha256sum | cut -d' ' -f1; }

# name + content hash of each file, in the order given
hash_files() {
  local f
  for f in "$@"; do
    printf '%s %s\n' "${f#"$repo"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
  done
}

image_label() { docker image inspect --format "{{ index .Config.Labels \"$TP_IMAGE_HASH_LABEL\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

# Prints "MIRROR SECURITY_MIRROR" for $SUITE, from the host's apt sources (deb822 *.sources
# files and one-line sources.list), unless TP_DEBIAN_MIRROR / TP_DEBIAN_SECURITY_MIRROR say.
debian_mirrors() {
  local mirror=${TP_DEBIAN_MIRROR:-} security=${TP_DEBIAN_SECURITY_MIRROR:-} found
  if [ -z "$mirror" ] || [ -z "$security" ]; then
    found=$(
      {
        for f in /etc/apt/sources.list.d/*.sources; do
          [ -f "$f" ] || continue
          awk '
            function flush() {
              if (types ~ /(^|[ \t])deb([ \t]|$)/ && uri != "") print uri, suites
              types = ""; uri = ""; suites = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:"  { types = $0; sub(/^[^:]*:/, "", types) }
            tolower($1) == "uris:"   { uri = $2 }
            tolower($1) == "suites:" { suites = $0; sub(/^[^:]*:/, "", suites) }
            END { flush() }' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
          [ -f "$f" ] || continue
          awk '$1 == "deb" {
              i = 2
              if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
              print $i, $(i + 1)
            }' "$f"
        done
      } | awk -v suite="$SUITE" '
        { sub(/\/+$/, "", $1) }
        $1 !~ /security/ && any == "" { any = $1 }
        {
          for (i = 2; i <= NF; i++) {
            if ($i == suite && main == "") main = $1
            if ($i == suite "-security" && sec == "") sec = $1
          }
        }
        END {
          if (main == "") main = any
          print main, sec
        }'
    )
    read -r fm fs <<<"$found" || true
    mirror=${mirror:-${fm:-}}
    security=${security:-${fs:-}}
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  if [ -z "$security" ]; then
    case "$mirror" in
      */debian) security="${mirror}-security" ;;
      *) security=http://deb.debian.org/debian-security ;;
    esac
  fi
  echo "$mirror $security"
}

# 1 when the host's apt accepts Release files past their Valid-Until (snapshot mirrors).
host_valid_until_off() {
  local conf
  conf=$(apt-config dump 2>/dev/null || true)
  if grep -qi '^Acquire::Check-Valid-Until "\(false\|0\|no\)"' <<<"$conf"; then echo 1; else echo 0; fi
}

# Unmount anything left mounted under $1 (debootstrap mounts /proc, /sys... in its target;
# an interrupted run can leave them), so that removing the tree never reaches the host.
umount_under() {
  local m
  findmnt -rn -o TARGET 2>/dev/null | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

remove_tree() {
  [ -e "$1" ] || return 0
  umount_under "$1"
  rm -rf --one-file-system "$1"
}

# classic `docker build` with the input-hash label
docker_build() { # REF HASH CONTEXT [docker build args...]
  local ref=$1 h=$2 ctx=$3
  shift 3
  docker build --force-rm --label "$TP_IMAGE_HASH_LABEL=$h" -t "$ref" "$@" "$ctx"
}

# ---------------------------------------------------------------------------------------
# base-debian

base_debian_rootfs_key() {
  local mirror security
  read -r mirror security <<<"$(debian_mirrors)"
  {
    echo "suite=$SUITE variant=$BASE_VARIANT arch=$(dpkg --print-architecture)"
    echo "packages=$BASE_PACKAGES"
    echo "mirror=$mirror security=$security valid-until-off=$(host_valid_until_off)"
    hash_files "$here/base-debian/finalize.sh"
  } | sha
}

base_debian_tarball() { echo "$img_cache/base-debian-$SUITE-$(base_debian_rootfs_key | cut -c1-16).tar"; }

BASE_DEBIAN_IMPORT_CHANGES=('CMD ["bash"]' 'ENV LANG=C.UTF-8')

hash_base_debian() {
  { base_debian_rootfs_key; printf '%s\n' "${BASE_DEBIAN_IMPORT_CHANGES[@]}"; } | sha
}

prereq_base_debian() {
  [ -s "$(base_debian_tarball)" ] && return 0
  command -v debootstrap >/dev/null 2>&1 || tp_apt_install debootstrap
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || tp_apt_install debian-archive-keyring
}

make_base_debian() {
  local h=$1 ref=$2 tarball mirror security work
  tarball=$(base_debian_tarball)
  if [ -s "$tarball" ]; then
    echo "rootfs from cache" >"$note_file"
    echo "using cached rootfs $tarball"
  else
    read -r mirror security <<<"$(debian_mirrors)"
    work="$img_cache/work/rootfs-$SUITE.$$"
    mkdir -p "$img_cache/work" "$img_cache/debootstrap-debs"
    # Trees left by an interrupted run (builds are serialized by the lock, so none is live).
    local stale
    for stale in "$img_cache"/work/rootfs-*; do remove_tree "$stale"; done
    # (expanded now: the locals are gone when the subshell's EXIT trap runs)
    # shellcheck disable=SC2064
    trap "remove_tree $(printf %q "$work"); rm -f $(printf %q "$tarball.tmp")" EXIT
    remove_tree "$work"
    echo "debootstrap $SUITE ($BASE_VARIANT + $BASE_PACKAGES) from $mirror"
    if ! debootstrap --variant="$BASE_VARIANT" --include="$BASE_PACKAGES" \
      --cache-dir="$img_cache/debootstrap-debs" "$SUITE" "$work" "$mirror"; then
      echo "debootstrap failed; its log:"
      tail -n 40 "$work/debootstrap/debootstrap.log" 2>/dev/null || true
      return 1
    fi
    umount_under "$work"
    bash "$here/base-debian/finalize.sh" "$work" "$SUITE" "$mirror" "$security" "$(host_valid_until_off)"
    echo "rootfs size: $(du -sh --one-file-system "$work" | cut -f1)"
    tar --numeric-owner --xattrs --xattrs-include='*' --one-file-system \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      -C "$work" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    remove_tree "$work"
    trap - EXIT
    echo "debootstrap" >"$note_file"
    # Old rootfs tarballs (other keys) are only disk: keep the newest 2.
    # shellcheck disable=SC2012
    ls -1t "$img_cache"/base-debian-"$SUITE"-*.tar 2>/dev/null | tail -n +3 | xargs -r rm -f
  fi
  local changes=() c
  for c in "${BASE_DEBIAN_IMPORT_CHANGES[@]}" "LABEL $TP_IMAGE_HASH_LABEL=$h"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" -m "debootstrap $SUITE $BASE_VARIANT + $BASE_PACKAGES" "$tarball" "$ref"
}

# ---------------------------------------------------------------------------------------
# base-node

node_package() { tp_node_package "$NODE_VERSION"; }
node_binary() { echo "$img_cache/node/$(node_package)/node"; }

hash_base_node() {
  local pkg
  pkg=$(node_package)
  { hash_files "$here/base-node/Dockerfile"; echo "node=$pkg"; echo "base=$(image_id "$(tp_image_ref base-debian)")"; } | sha
}

# The official Node.js build, from the npm registry (lib/node-dist.sh).
prereq_base_node() { tp_node_binary "$NODE_VERSION" >/dev/null; }

make_base_node() {
  local h=$1 ref=$2 ctx
  ctx="$img_cache/work/base-node.$$"
  # Contexts left by an interrupted or failed build (builds are serialized by the lock).
  rm -rf "$img_cache"/work/base-node.*
  mkdir -p "$ctx"
  cp "$here/base-node/Dockerfile" "$(node_binary)" "$ctx/"
  docker_build "$ref" "$h" "$ctx" --build-arg "BASE_IMAGE=$(tp_image_ref base-debian)"
  rm -rf "$ctx"
}

# ---------------------------------------------------------------------------------------
# pause

hash_pause() {
  { hash_files "$here/pause/pause.c" "$here/pause/Dockerfile"; echo "cflags=${PAUSE_CFLAGS[*]}"; } | sha
}

prereq_pause() {
  local libc
  libc=$(gcc -print-file-name=libc.a 2>/dev/null || true)
  if ! command -v gcc >/dev/null 2>&1 || [ ! -f "$libc" ]; then
    tp_apt_install gcc libc6-dev
  fi
}

make_pause() {
  local h=$1 ref=$2 ctx
  ctx=$(mktemp -d "$img_cache/work/pause.XXXXXX")
  # shellcheck disable=SC2064 # expanded now: the local is gone when the EXIT trap runs
  trap "rm -rf $(printf %q "$ctx")" EXIT
  cp "$here/pause/Dockerfile" "$ctx/"
  gcc "${PAUSE_CFLAGS[@]}" -o "$ctx/pause" "$here/pause/pause.c"
  if grep -q 'INTERP' <<<"$(readelf -l "$ctx/pause")"; then
    echo "pause binary is dynamically linked; expected a static binary"
    return 1
  fi
  echo "pause binary: $(stat -c %s "$ctx/pause") bytes"
  docker_build "$ref" "$h" "$ctx"
}

# ---------------------------------------------------------------------------------------
# echo (test/fixtures/echo-server)

echo_ctx="$repo/test/fixtures/echo-server"

hash_echo() {
  local files
  mapfile -t files < <(find "$echo_ctx" -type f | LC_ALL=C sort)
  { hash_files "${files[@]}"; echo "base=$(image_id "$(tp_image_ref base-node)")"; } | sha
}

prereq_echo() { :; }

make_echo() {
  local h=$1 ref=$2
  docker_build "$ref" "$h" "$echo_ctx" --build-arg "BASE_IMAGE=$(tp_image_ref base-node)"
}

# ---------------------------------------------------------------------------------------
# coredns

coredns_bin="$TP_K8S_BIN/coredns"

hash_coredns() {
  if [ ! -x "$coredns_bin" ]; then
    echo "coredns binary not found at $coredns_bin: run test/cluster/k8s-build/build.sh first" >&2
    return 1
  fi
  { echo "version=$COREDNS_VERSION"; hash_files "$coredns_bin" "$here/coredns/Dockerfile"; } | sha
}

prereq_coredns() { :; }

make_coredns() {
  local h=$1 ref=$2 ctx
  if command -v readelf >/dev/null 2>&1 && grep -q 'INTERP' <<<"$(readelf -l "$coredns_bin")"; then
    echo "$coredns_bin is dynamically linked; FROM scratch needs a static (CGO_ENABLED=0) build"
    return 1
  fi
  ctx=$(mktemp -d "$img_cache/work/coredns.XXXXXX")
  # shellcheck disable=SC2064 # expanded now: the local is gone when the EXIT trap runs
  trap "rm -rf $(printf %q "$ctx")" EXIT
  cp "$here/coredns/Dockerfile" "$ctx/"
  cp "$coredns_bin" "$ctx/coredns"
  docker_build "$ref" "$h" "$ctx"
}

# ---------------------------------------------------------------------------------------
# traffic-manager, agent-injector, traffic-agent: the product's cluster images, from the
# bundles of `npm run build` (cluster/dist) and cluster/images/<program>.Dockerfile.

# TP_PRODUCT_DIR: another folder laid out as cluster/ (images/ and dist/), e.g. a build of the
# same source stamped with another version (TP_PRODUCT_VERSION, see images.sh).
product_ctx="${TP_PRODUCT_DIR:-$repo/cluster}"
product_program() {
  case "$1" in traffic-manager) echo manager ;; agent-injector) echo injector ;; traffic-agent) echo agent ;; esac
}
hash_product() {
  local program bundle
  program=$(product_program "$1")
  bundle="$product_ctx/dist/$program.js"
  if [ ! -f "$bundle" ]; then
    echo "$bundle not found: run npm run build first" >&2
    return 1
  fi
  { hash_files "$bundle" "$product_ctx/images/$program.Dockerfile"; echo "base=$(image_id "$(tp_image_ref base-node)")"; } | sha
}
make_product() {
  local name=$1 h=$2 ref=$3
  docker_build "$ref" "$h" "$product_ctx" -f "$product_ctx/images/$(product_program "$name").Dockerfile" \
    --build-arg "BASE_IMAGE=$(tp_image_ref base-node)"
}
for _n in traffic-manager agent-injector traffic-agent; do
  eval "hash_${_n//-/_}() { hash_product $_n; }; prereq_${_n//-/_}() { :; }; make_${_n//-/_}() { make_product $_n \"\$@\"; }"
done

# ---------------------------------------------------------------------------------------
# driver

[ "$#" -gt 0 ] || { usage; exit 2; }

declare -A wanted=()
add_wanted() {
  local d
  for d in $(tp_image_deps "$1"); do add_wanted "$d"; done
  wanted[$1]=1
}
for arg in "$@"; do
  if [ "$arg" = all ]; then
    for n in "${TP_IMAGE_NAMES[@]}"; do wanted[$n]=1; done
  elif tp_image_ref "$arg" >/dev/null; then
    add_wanted "$arg"
  else
    echo "error: unknown image name '$arg'" >&2
    usage
    exit 2
  fi
done

tp_ensure_dockerd
mkdir -p "$img_cache/work" "$log_dir"

# One build at a time per machine (two sessions could share the cache and the daemon).
exec 9>"$img_cache/.build.lock"
if ! flock -n 9; then
  echo "[images] another build.sh holds $img_cache/.build.lock; waiting (up to 1h)" >&2
  flock -w 3600 9 || { echo "error: timed out waiting for $img_cache/.build.lock" >&2; exit 1; }
fi

is_tty=0
[ -t 1 ] && is_tty=1
note_file="$img_cache/work/.note.$$"
trap 'rm -f "$note_file"' EXIT
declare -A failed=()
total_start=$(date +%s.%N)

line() { # NAME REF STATUS SECONDS [DETAIL]
  local size=""
  if image_id "$2" >/dev/null; then
    size=$(docker image inspect --format '{{.Size}}' "$2" | awk '{ printf "%.1fMB", $1 / 1e6 }')
  fi
  [ "$is_tty" = 1 ] && printf '\r\033[K'
  printf '[images] %-12s %-30s %-11s %7.1fs %9s%s\n' "$1" "$2" "$3" "$4" "$size" "${5:+  ($5)}"
}

elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

for n in "${TP_IMAGE_NAMES[@]}"; do
  [ -n "${wanted[$n]:-}" ] || continue
  ref=$(tp_image_ref "$n")
  fn=${n//-/_}
  start=$(date +%s.%N)

  dep_failed=""
  for d in $(tp_image_deps "$n"); do
    if [ -n "${failed[$d]:-}" ]; then dep_failed=$d; fi
  done
  if [ -n "$dep_failed" ]; then
    failed[$n]=1
    line "$n" "$ref" "SKIPPED" 0 "$dep_failed failed"
    continue
  fi

  if ! h=$("hash_$fn" 2>"$note_file"); then
    failed[$n]=1
    line "$n" "$ref" "FAILED" "$(elapsed)" "$(cat "$note_file")"
    continue
  fi
  if [ "${TP_IMAGES_FORCE:-}" != 1 ] && [ "$(image_label "$ref")" = "$h" ]; then
    line "$n" "$ref" "up-to-date" "$(elapsed)" "input ${h:0:12}"
    continue
  fi

  "prereq_$fn"
  log="$log_dir/$n.log"
  [ "$is_tty" = 1 ] && printf '[images] %-12s %-30s building... (log: %s)' "$n" "$ref" "$log"
  : >"$note_file"
  {
    echo "==== $(date -Is) build $n -> $ref (input hash $h)"
  } >"$log"
  set +e
  (set -e; "make_$fn" "$h" "$ref") >>"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" = 0 ] && [ "$(image_label "$ref")" != "$h" ]; then
    echo "image $ref does not carry the expected $TP_IMAGE_HASH_LABEL=$h after the build" >>"$log"
    rc=1
  fi
  if [ "$rc" != 0 ]; then
    failed[$n]=1
    line "$n" "$ref" "FAILED" "$(elapsed)" "log: $log"
    echo "---- last lines of $log:" >&2
    tail -n 25 "$log" >&2
    echo "----" >&2
    continue
  fi
  # The image this replaced (now untagged) is only disk.
  docker image prune -f --filter "label=$TP_IMAGE_HASH_LABEL" >>"$log" 2>&1 || true
  note=$(cat "$note_file")
  line "$n" "$ref" "built" "$(elapsed)" "input ${h:0:12}${note:+, $note}"
done

total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[images] FAILED: ${!failed[*]} (total ${total}s)" >&2
  exit 1
fi
echo "[images] all done in ${total}s"
