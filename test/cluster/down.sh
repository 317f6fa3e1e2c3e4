#!/usr/bin/env bash
# Removes everything up.sh made: processes, containers, mounts, cgroups, network interfaces,
# routes, iptables rules, sysctl changes and the state folders. Safe to run at any time, also
# after a failed or killed `up`; the caches (built binaries, images) are kept.
#   --verify   afterwards, check (not assume) that nothing of the cluster remains; exit 1 if so.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

verify=false
for arg in "$@"; do
  case $arg in
    --verify) verify=true ;;
    *) tp_die "unknown option $arg" "usage: npm run cluster:down [-- --verify]" ;;
  esac
done
if [ "${TP_CLUSTER:-local}" = kind ]; then exec bash "$here/kind.sh" down "$@"; fi
[ "$(id -u)" = 0 ] || tp_die "cluster:down must run as root" "run it with sudo"

# Sends SIGTERM, waits up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid=$1 wait=${2:-10} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < wait * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
stop_component() {
  local pidfile=$TP_PIDS/$1.pid
  [ -f "$pidfile" ] || return 0
  stop_pid "$(cat "$pidfile")" "${2:-10}"
  rm -f "$pidfile"
}

# Every process whose command line names our containerd socket or state folder: the runc
# shims, and a containerd or kubelet whose pid file was lost.
our_processes() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
    case $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) in
      *"$TP_RUN/"* | *"$TP_STATE/"*) echo "${p#/proc/}" ;;
    esac
  done
}

# Cgroups the kubelet made for pods (cgroup v1: one tree per controller; v2: one tree).
# Lists every cgroup folder under each kubepods root, children before parents.
pod_cgroups() {
  find /sys/fs/cgroup -maxdepth 3 -type d -name kubepods 2>/dev/null | while read -r root; do
    find "$root" -depth -type d
  done
}

did=()

# 1. The kubelet first, so that nothing restarts containers while we remove them.
for c in kubelet kube-proxy kube-scheduler kube-controller-manager; do
  [ -f "$TP_PIDS/$c.pid" ] && did+=("$c")
  stop_component "$c"
done

# 2. Every process in a pod: kill by cgroup, which also catches orphans of a killed shim.
pids=$(pod_cgroups | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done | sort -u)
if [ -n "$pids" ]; then
  did+=("$(echo "$pids" | wc -w) pod processes")
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
fi

# 3. containerd, its shims, and the control plane.
[ -f "$TP_PIDS/containerd.pid" ] && did+=("containerd")
stop_component containerd 10
for pid in $(our_processes); do stop_pid "$pid" 5; done
for c in kube-apiserver etcd; do
  [ -f "$TP_PIDS/$c.pid" ] && did+=("$c")
  stop_component "$c"
done

# 4. Mounts: pod volumes, container root file systems, shm, network namespaces.
mounts=$(tp_mounts_under "$TP_STATE" "$TP_RUN")
if [ -n "$mounts" ]; then
  did+=("$(echo "$mounts" | wc -l) mounts")
  echo "$mounts" | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
fi

# 5. Empty pod cgroups (deepest first; a cgroup folder is removed with rmdir).
for d in $(pod_cgroups); do rmdir "$d" 2>/dev/null; done

# 6. Interfaces and routes. Deleting the sink bridge takes its routes and the node address
#    with it; veths of pods vanish with their network namespaces, but a leftover is removed.
for port in $(ip -o link show master "$TP_CNI_IF" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link del "$port" 2>/dev/null
done
for link in "$TP_CNI_IF" "$TP_SINK_IF"; do
  if ip link show "$link" >/dev/null 2>&1; then ip link del "$link" && did+=("interface $link"); fi
done

# 7. iptables: every chain made by kube-proxy, the kubelet, the CNI plugins or this harness,
#    and every rule that jumps to one. Other rules (Docker's, the user's) are left alone.
#    Rules are deleted one by one: with the nft back end, iptables-restore of a filtered dump
#    keeps user chains that the dump no longer names.
ours='^(KUBE-|CNI-|TP-CLUSTER)'
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt-save" >/dev/null || continue
  for table in filter nat mangle raw; do
    dump=$("$ipt-save" -t "$table" 2>/dev/null) || continue
    chains=$(echo "$dump" | sed -n 's/^:\([^ ]*\).*/\1/p' | grep -E "$ours")
    jumps=$(echo "$dump" | grep -E '^-A ' | grep -E -- "-[jg] (KUBE-|CNI-|TP-CLUSTER)" | awk '$2 !~ /^(KUBE-|CNI-|TP-CLUSTER)/')
    [ -z "$chains$jumps" ] && continue
    while read -r rule; do
      [ -n "$rule" ] && eval "$ipt -w -t $table -D ${rule#-A }" 2>/dev/null
    done <<<"$jumps"
    for c in $chains; do "$ipt" -w -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$ipt" -w -t "$table" -X "$c" 2>/dev/null; done
    did+=("$ipt $table rules")
  done
done

# 8. Sysctls back to what they were before up.
if [ -f "$TP_STATE/sysctl.saved" ]; then
  while IFS='=' read -r key value; do
    [ -n "$value" ] && sysctl -qw "$key=$value" 2>/dev/null
  done <"$TP_STATE/sysctl.saved"
fi

# 9. State. Socket files the containerd 1.6 shims leave in its fixed /run/containerd/s are ours
#    only if no other containerd runs; they are removed with their shims, so none should remain.
if [ -d "$TP_STATE" ] || [ -d "$TP_RUN" ]; then
  rm -rf "$TP_STATE" "$TP_RUN" && did+=("state in $TP_STATE and $TP_RUN")
fi

if [ ${#did[@]} -eq 0 ]; then tp_log "no cluster was running; nothing to remove"; else tp_log "removed: $(IFS=,; echo "${did[*]}" | sed 's/,/, /g')"; fi

if $verify; then
  bash "$here/check-clean.sh"
fi
