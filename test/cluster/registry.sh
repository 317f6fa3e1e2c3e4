#!/usr/bin/env bash
# A real image registry on this machine, for the tests of pulling the product's images over the
# network as a cluster that is not ours would: the CNCF distribution registry, built from the Go
# module proxy once per version (cached under $TP_CACHE/registry-<version>/bin), serving plain
# HTTP from a folder of its own.
#
# Usage: registry.sh up        start it (any free port) and print, last, REGISTRY=<host:port>
#                              (the name the nodes pull by) and PUSH=<127.0.0.1:port> (the name
#                              this machine's Docker pushes to: it pushes over plain HTTP to
#                              loopback only); a running one is reused
#        registry.sh down      stop it, remove its storage and the nodes' settings for it
#        registry.sh address   print <host:port> of the running one, or fail
#        registry.sh forget IMAGE...   remove the images from every node, so that the next pod
#                              that runs one pulls it again (for the benchmarks)
#
# It serves the cluster whose state is in $TP_STATE (as for the e2e suites): it listens where
# that cluster's nodes reach this machine (127.0.0.1 for the local cluster, whose node is this
# machine; the kind network's gateway for kind), and writes the hosts.toml that tells each node's
# containerd to pull from it over plain HTTP (up.sh and kind's node image point containerd's
# registry config_path at that folder). With no cluster up, it listens on 127.0.0.1 only. Where
# the nodes' address is not loopback, a relay on 127.0.0.1, same port, passes pushes on to it:
# one registry known by two names, as a laptop's kind registry often is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
TP_REGISTRY_VERSION=${TP_REGISTRY_VERSION:-v3.1.2}
bin=$TP_CACHE/registry-$TP_REGISTRY_VERSION/bin
run=${TP_REGISTRY_RUN:-/run/tp-registry}
[ -w "$(dirname "$run")" ] || run=$TP_CACHE/registry-run

build() {
  [ -x "$bin/registry" ] && return 0
  command -v go >/dev/null || tp_die "building the registry needs Go" "install Go (https://go.dev/dl/), then retry"
  tp_log "building the distribution registry $TP_REGISTRY_VERSION from the Go module proxy (first run only; cached in $bin)"
  GOFLAGS=-mod=mod GOBIN=$bin go install "github.com/distribution/distribution/v3/cmd/registry@$TP_REGISTRY_VERSION" >&2
}

# local | kind | none: the cluster the registry is for.
cluster_kind() {
  if [ -f "$TP_STATE/cluster.env" ]; then sed -n 's/^TP_CLUSTER=//p' "$TP_STATE/cluster.env"; else echo none; fi
}
listen_address() {
  case $(cluster_kind) in
    kind) sed -n 's/^TP_HOST_ADDRESS=//p' "$TP_STATE/cluster.env" ;;
    *) echo 127.0.0.1 ;;
  esac
}
# Runs "$@" with docker pointed at the kind cluster's engine (its own dockerd when it was built here).
kind_docker() {
  if [ "$(cat "$TP_STATE/mode" 2>/dev/null)" = built ]; then
    # shellcheck source=kind/versions.sh
    (. "$here/kind/versions.sh" && DOCKER_HOST=unix://$TP_KIND_DOCKER_SOCK docker "$@")
  else
    docker "$@"
  fi
}
kind_nodes() { kind_docker ps -q --filter "label=io.x-k8s.kind.cluster=${TP_KIND_NAME:-telepresence-ts}"; }

# The node's containerd: pull ADDRESS over plain HTTP (and remove that setting again with --remove).
configure_nodes() { # ADDRESS [--remove]
  local address=$1 remove=${2:-} dir node
  case $(cluster_kind) in
    local)
      dir=$TP_STATE/containerd/certs.d/$address
      if [ -n "$remove" ]; then rm -rf "$dir"; else
        mkdir -p "$dir"
        hosts_toml "$address" >"$dir/hosts.toml"
      fi
      ;;
    kind)
      dir=/etc/containerd/certs.d/$address
      for node in $(kind_nodes); do
        if [ -n "$remove" ]; then kind_docker exec "$node" rm -rf "$dir"; else
          hosts_toml "$address" | kind_docker exec -i "$node" sh -c "mkdir -p '$dir' && cat >'$dir/hosts.toml'"
        fi
      done
      ;;
  esac
}
forget() { # IMAGE...
  local node image
  case $(cluster_kind) in
    local)
      for image in "$@"; do ctr --address "$TP_CONTAINERD_SOCK" -n k8s.io images rm "$image" >/dev/null 2>&1 || true; done
      ;;
    kind)
      for node in $(kind_nodes); do
        for image in "$@"; do kind_docker exec "$node" crictl rmi "$image" >/dev/null 2>&1 || true; done
      done
      ;;
    *) tp_die "no cluster is up (no $TP_STATE/cluster.env)" "run npm run cluster:up first" ;;
  esac
}
hosts_toml() { printf 'server = "http://%s"

[host."http://%s"]
  capabilities = ["pull", "resolve"]
' "$1" "$1"; }

alive() { [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null && [ -f "$run/address" ]; }
answers() { curl -fsS -o /dev/null "http://$(cat "$run/address")/v2/"; }

up() {
  local listen
  listen=$(listen_address)
  if alive && answers && [ "$(cut -d: -f1 "$run/address")" = "$listen" ]; then
    tp_log "registry already running at $(cat "$run/address")"
    print_names
    return 0
  fi
  down >/dev/null
  build
  mkdir -p "$run/storage"
  local port
  # A port free on loopback and on the listening address alike (the relay takes it on loopback).
  port=$(python3 -c 'import socket, sys
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]; a.close()
    try:
        b = socket.socket(); b.bind((sys.argv[1], p)); print(p); break
    except OSError:
        pass' "$listen")
  cat >"$run/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $run/storage
  delete:
    enabled: true
http:
  addr: $listen:$port
YAML
  echo "$listen:$port" >"$run/address"
  setsid "$bin/registry" serve "$run/config.yml" </dev/null >>"$run/registry.log" 2>&1 &
  echo $! >"$run/pid"
  tp_wait 30 "the registry at $listen:$port" answers || { tail -n 20 "$run/registry.log" >&2; down; exit 1; }
  if [ "$listen" != 127.0.0.1 ]; then
    setsid node -e '
      const net = require("node:net");
      const [host, port] = process.argv.slice(1);
      net.createServer((c) => {
        const u = net.connect(Number(port), host);
        c.pipe(u).pipe(c);
        c.on("error", () => u.destroy());
        u.on("error", () => c.destroy());
      }).listen(Number(port), "127.0.0.1");' "$listen" "$port" </dev/null >>"$run/registry.log" 2>&1 &
    echo $! >"$run/relay.pid"
    tp_wait 10 "the relay at 127.0.0.1:$port" curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" || { down; exit 1; }
  fi
  configure_nodes "$listen:$port"
  tp_log "registry $TP_REGISTRY_VERSION at $listen:$port for the $(cluster_kind) cluster's nodes (storage $run/storage, log $run/registry.log)"
  print_names
}
print_names() {
  echo "REGISTRY=$(cat "$run/address")"
  echo "PUSH=127.0.0.1:$(cut -d: -f2 "$run/address")"
}
stop_pid() { # PIDFILE
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  [ -f "$run/address" ] && configure_nodes "$(cat "$run/address")" --remove
  stop_pid "$run/relay.pid"
  stop_pid "$run/pid"
  rm -rf "$run"
  tp_log "registry stopped; its storage is removed"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  address) alive && cat "$run/address" ;;
  forget) shift; forget "$@" ;;
  *) tp_die "usage: registry.sh up | down | address | forget IMAGE..." ;;
esac
