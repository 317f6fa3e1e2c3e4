# shellcheck shell=bash
# Docker daemon management for the test-cluster harness.
#
# Source this file and call:
#   tp_ensure_dockerd   install docker.io if dockerd is missing, start dockerd if the
#                       daemon does not answer, wait (bounded) until it does. Idempotent.
#   tp_stop_dockerd     stop dockerd only if *we* started it (our pidfile names it).
#   tp_apt_install PKG...  apt-get install PKG... non-interactively (runs apt-get update
#                       once per shell first); used for every tool the harness needs.
# Or run it directly: bash test/cluster/lib/docker.sh start|stop|status
#
# There is no systemd (or any init that manages services) on the test machines, so dockerd
# is started here in the background, in its own session (setsid) so that it outlives the
# shell or job that started it. All messages go to stderr: callers such as images/save.sh
# write image tarballs to stdout.
#
# Settings (environment):
#   TP_DOCKERD_LOG      dockerd's log file                 (default /var/log/tp-dockerd.log)
#   TP_DOCKERD_PIDFILE  our marker that we started dockerd (default /run/tp-dockerd.pid)
#   TP_DOCKERD_WAIT     seconds to wait for the daemon      (default 60)
#   TP_DOCKERD_ARGS     extra dockerd arguments (default "--iptables=false", see below)

_tp_docker_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
. "$_tp_docker_lib_dir/versions.sh"

TP_DOCKERD_LOG=${TP_DOCKERD_LOG:-/var/log/tp-dockerd.log}
TP_DOCKERD_PIDFILE=${TP_DOCKERD_PIDFILE:-/run/tp-dockerd.pid}
TP_DOCKERD_WAIT=${TP_DOCKERD_WAIT:-60}
# --iptables=false: Docker is only used here to build images (and for quick smoke runs);
# the cluster itself runs on containerd + CNI + kube-proxy on the same host. With iptables
# on, dockerd sets the filter FORWARD policy to DROP and adds its own NAT chains, which is a
# well-known way to break pod traffic on a host that also runs Kubernetes. Without it,
# `docker run -p` still works through docker-proxy (the userland proxy), but containers on
# the default bridge have no outbound NAT: builds that need the network (apt-get) use
# `--network host` instead. Override with TP_DOCKERD_ARGS if you need Docker's NAT.
TP_DOCKERD_ARGS=${TP_DOCKERD_ARGS:---iptables=false}

_tp_log() { printf '%s\n' "$*" >&2; }
_tp_die() { printf 'error: %s\n' "$*" >&2; }  # prints only: callers return 1

# apt-get install, non-interactive, with one apt-get update per shell first.
tp_apt_install() {
  [ "$#" -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    _tp_die "need root to apt-get install $*"
    return 1
  fi
  if [ -z "${_TP_APT_UPDATED:-}" ]; then
    _tp_log "==> apt-get update (to install: $*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || { _tp_die "apt-get update failed"; return 1; }
    _TP_APT_UPDATED=1
  fi
  _tp_log "==> apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2 \
    || { _tp_die "apt-get install $* failed"; return 1; }
}

# True when the Docker daemon answers on the default socket (or $DOCKER_HOST).
tp_docker_ok() {
  timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Pid from our pidfile if it names a live dockerd, else nothing (and status 1).
_tp_our_dockerd_pid() {
  local pid
  [ -f "$TP_DOCKERD_PIDFILE" ] || return 1
  pid=$(cat "$TP_DOCKERD_PIDFILE" 2>/dev/null) || return 1
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  printf '%s\n' "$pid"
}

tp_ensure_dockerd() {
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    _tp_log "==> dockerd or the docker CLI is missing: installing Debian's docker.io"
    tp_apt_install docker.io || return 1
    command -v dockerd >/dev/null 2>&1 || { _tp_die "docker.io installed but dockerd is still not on PATH"; return 1; }
  fi
  if tp_docker_ok; then
    _tp_check_storage_driver
    return
  fi

  local deadline=$((SECONDS + TP_DOCKERD_WAIT)) pid=""
  if pid=$(_tp_our_dockerd_pid); then
    _tp_log "==> dockerd (pid $pid, ours) is running but not answering yet; waiting up to ${TP_DOCKERD_WAIT}s"
  elif pgrep -x dockerd >/dev/null 2>&1; then
    # Someone else's dockerd: never start a second one on the same socket.
    _tp_log "==> a dockerd not started by us is running but not answering; waiting up to ${TP_DOCKERD_WAIT}s"
  else
    mkdir -p "$(dirname "$TP_DOCKERD_LOG")" "$(dirname "$TP_DOCKERD_PIDFILE")"
    _tp_log "==> starting dockerd (log: $TP_DOCKERD_LOG)"
    printf '\n==== %s tp_ensure_dockerd: dockerd %s\n' "$(date -Is)" "$TP_DOCKERD_ARGS" >>"$TP_DOCKERD_LOG"
    # `bash -c` has job control off, so the background child is not a process-group leader
    # and setsid execs dockerd in place (no fork): $! is dockerd's own pid.
    # shellcheck disable=SC2016
    pid=$(bash -c 'setsid dockerd $1 </dev/null >>"$2" 2>&1 & echo $!' _ "$TP_DOCKERD_ARGS" "$TP_DOCKERD_LOG") \
      || { _tp_die "could not launch dockerd (log: $TP_DOCKERD_LOG)"; return 1; }
    printf '%s\n' "$pid" >"$TP_DOCKERD_PIDFILE"
  fi

  # Bounded poll: answer, death of the process we started, or the deadline.
  while ! tp_docker_ok; do
    if [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; then
      rm -f "$TP_DOCKERD_PIDFILE"
      _tp_die "dockerd (pid $pid) exited during startup; last lines of $TP_DOCKERD_LOG:"
      tail -n 20 "$TP_DOCKERD_LOG" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      _tp_die "dockerd did not answer within ${TP_DOCKERD_WAIT}s; see $TP_DOCKERD_LOG (last lines below)"
      tail -n 20 "$TP_DOCKERD_LOG" >&2
      return 1
    fi
    sleep 0.5
  done
  _tp_log "==> dockerd is up ($(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null))"
  _tp_check_storage_driver
}

# dockerd picks overlay2 on ext4/xfs when the kernel has overlayfs; vfs (a full copy per
# layer) also works but is very slow and disk hungry, so say so loudly if that happened.
_tp_check_storage_driver() {
  local driver
  driver=$(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null) || return 0
  case "$driver" in
    overlay2) ;;
    *) _tp_log "warning: dockerd uses storage driver '$driver' (expected overlay2); builds will be slow. See $TP_DOCKERD_LOG" ;;
  esac
}

tp_stop_dockerd() {
  local pid
  if ! pid=$(_tp_our_dockerd_pid); then
    if [ -f "$TP_DOCKERD_PIDFILE" ]; then
      rm -f "$TP_DOCKERD_PIDFILE"
      _tp_log "==> our dockerd is no longer running (removed stale $TP_DOCKERD_PIDFILE)"
    elif pgrep -x dockerd >/dev/null 2>&1; then
      _tp_log "==> dockerd is running but was not started by us; leaving it alone"
    else
      _tp_log "==> dockerd is not running"
    fi
    return 0
  fi
  _tp_log "==> stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # dockerd stops its containers (10s grace each, in parallel) and its containerd first.
  local deadline=$((SECONDS + 45))
  while [ -d "/proc/$pid" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
  if [ -d "/proc/$pid" ]; then
    _tp_log "warning: dockerd (pid $pid) did not exit within 45s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$TP_DOCKERD_PIDFILE"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start) tp_ensure_dockerd ;;
    stop) tp_stop_dockerd ;;
    status)
      if tp_docker_ok; then
        if pid=$(_tp_our_dockerd_pid); then echo "dockerd running (pid $pid, started by us)"; else echo "dockerd running (not started by us)"; fi
        docker info --format 'storage driver: {{.Driver}}, cgroup driver: {{.CgroupDriver}}, docker root: {{.DockerRootDir}}'
      else
        echo "dockerd not answering"; exit 1
      fi
      ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
  esac
fi
