#!/usr/bin/env bash
# The kind back end's own Docker engine, for machines whose Docker cannot start kind's nodes:
# its own socket, data root, exec root, bridge and address pool, and runc-wrapper.sh as the
# default runtime. Usage: dockerd.sh start | stop | status
#
# It never touches the machine's other dockerd: a dockerd started with --bridge=none deletes
# the host's docker0, so this one gets a bridge of its own (tpkind0), made here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=versions.sh
. "$here/versions.sh"
pidfile=$TP_KIND_RUN/dockerd.pid
log=$TP_KIND_STATE/logs/dockerd.log

kdocker() { docker --host "unix://$TP_KIND_DOCKER_SOCK" "$@"; }

# The other dockerd's bridge: starting a second dockerd was seen to delete it even with a bridge
# of its own, which breaks that engine's builds (RUN steps) and containers. Its address is noted
# before, and the bridge made again after, when it went.
host_bridge_cidr() { ip -o -4 addr show docker0 2>/dev/null | awk '{ print $4; exit }'; }
keep_host_bridge() { # CIDR noted before
  [ -n "$1" ] || return 0
  ip link show docker0 >/dev/null 2>&1 && return 0
  tp_log "docker0 (the other dockerd's bridge) went while the kind dockerd started or stopped: making it again ($1)"
  ip link add docker0 type bridge && ip addr add "$1" dev docker0 && ip link set docker0 up
}
alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if alive && kdocker version >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null || tp_die "dockerd is not installed" "apt-get install docker.io"
  command -v jq >/dev/null || tp_die "jq is not installed (runc-wrapper.sh needs it)" "apt-get install jq"
  mkdir -p "$TP_KIND_RUN" "$TP_KIND_STATE/logs" "$TP_KIND_DOCKER_ROOT"
  if ! ip link show "$TP_KIND_BRIDGE" >/dev/null 2>&1; then
    ip link add "$TP_KIND_BRIDGE" type bridge
    ip addr add "$TP_KIND_BRIDGE_CIDR" dev "$TP_KIND_BRIDGE"
    ip link set "$TP_KIND_BRIDGE" up
  fi
  local docker0
  docker0=$(host_bridge_cidr)
  # An empty daemon.json, so that /etc/docker/daemon.json (the other dockerd's) is not read.
  echo '{}' >"$TP_KIND_STATE/daemon.json"
  tp_log "starting the kind dockerd (socket $TP_KIND_DOCKER_SOCK, log $log)"
  # --iptables=false: no NAT and no DOCKER chains on the host; the nodes talk over their bridge
  # and are reached from here through docker-proxy. See kind.sh for the FORWARD rules.
  TP_KIND_RUNC=$(command -v runc) setsid dockerd \
    --config-file "$TP_KIND_STATE/daemon.json" \
    --host "unix://$TP_KIND_DOCKER_SOCK" --pidfile "$pidfile" \
    --data-root "$TP_KIND_DOCKER_ROOT" --exec-root "$TP_KIND_RUN/docker" \
    --bridge "$TP_KIND_BRIDGE" --default-address-pool "base=$TP_KIND_ADDRESS_POOL,size=24" \
    --iptables=false --ip-masq=false --ip-forward=false \
    --add-runtime "tp-kind-runc=$here/runc-wrapper.sh" --default-runtime tp-kind-runc \
    --storage-driver overlay2 </dev/null >>"$log" 2>&1 &
  tp_wait 60 "the kind dockerd" kdocker version || { tail -n 20 "$log" >&2; exit 1; }
  keep_host_bridge "$docker0"
}

stop() {
  local docker0
  docker0=$(host_bridge_cidr)
  if alive; then
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  if ip link show "$TP_KIND_BRIDGE" >/dev/null 2>&1; then ip link del "$TP_KIND_BRIDGE"; fi
  keep_host_bridge "$docker0"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) alive && kdocker version --format 'kind dockerd {{.Server.Version}}' ;;
  *) tp_die "usage: dockerd.sh start | stop | status" ;;
esac
