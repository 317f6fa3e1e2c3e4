#!/usr/bin/env bash
# Checks that no trace of the local cluster is left on this machine: no process, mount,
# network interface, route, iptables rule or cgroup of it. Prints what it finds; exit 1 if any.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"

found=()
for p in /proc/[0-9]*; do
  [ "${p#/proc/}" = "$$" ] && continue
  cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
  exe=$(readlink "$p/exe" 2>/dev/null)
  case "$exe|$cmd" in
    "$TP_K8S_BIN/"* | *"|"*"$TP_RUN/"* | *"|"*"$TP_STATE/"* | *"|etcd --name tp-etcd"*) found+=("process ${p#/proc/}: ${cmd:0:100}") ;;
  esac
done
while read -r m; do [ -n "$m" ] && found+=("mount $m"); done < <(tp_mounts_under "$TP_STATE" "$TP_RUN")
for link in "$TP_SINK_IF" "$TP_CNI_IF"; do
  ip link show "$link" >/dev/null 2>&1 && found+=("interface $link")
done
while read -r l; do [ -n "$l" ] && found+=("veth $l"); done < <(ip -o link show type veth 2>/dev/null | grep -F "master $TP_CNI_IF" | awk -F': ' '{print $2}')
while read -r r; do [ -n "$r" ] && found+=("route $r"); done < <(ip route show | grep -E "^(${TP_SERVICE_CIDR%/*}|${TP_POD_CIDR%.*.*}\.)|$TP_SINK_IF|$TP_CNI_IF")
ip -o addr show | grep -qF " $TP_NODE_IP/" && found+=("address $TP_NODE_IP")
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt-save" >/dev/null || continue
  n=$("$ipt-save" 2>/dev/null | grep -cE '(KUBE-|CNI-|TP-CLUSTER)')
  [ "$n" -gt 0 ] && found+=("$n $ipt lines naming KUBE-/CNI-/TP-CLUSTER chains")
done
while read -r d; do [ -n "$d" ] && found+=("cgroup $d"); done < <(find /sys/fs/cgroup -maxdepth 3 -type d -name kubepods 2>/dev/null)
for d in "$TP_STATE" "$TP_RUN"; do [ -e "$d" ] && found+=("folder $d"); done

if [ ${#found[@]} -gt 0 ]; then
  echo "NOT CLEAN: ${#found[@]} leftovers of the cluster:"
  printf '  %s\n' "${found[@]}"
  exit 1
fi
echo "clean: no process, mount, interface, route, iptables rule, cgroup or state folder of the cluster remains"
