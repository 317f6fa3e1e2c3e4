#!/bin/sh
# Gathers the traffic-agent's whole file system into OUT, for an image FROM scratch: the Node
# runtime, iptables (the init container's redirects) with its extensions, OpenSSH's sftp-server
# (remote volumes), the shared libraries each of them loads, and the few files under /etc they
# read. No shell, package manager or other tool of the base comes along: the agent runs none.
# Runs inside the base image (see agent.Dockerfile). Usage: agent-rootfs.sh OUT
set -eu
out=$1
node=$(command -v node)
iptables=$(command -v iptables)
ip6tables=$(command -v ip6tables)
sftp=/usr/lib/openssh/sftp-server
xtables=$(dirname "$(readlink -f "$(ldd "$(readlink -f "$iptables")" | awk '/libxtables/ { print $3 }')")")/xtables

# The programs and the extensions iptables loads, then every library any of them needs.
files="$node $iptables $ip6tables $sftp $(find "$xtables" -name '*.so')"
libs=$(for f in $files; do ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; done | sort -u)
etc=""
for f in /etc/ld.so.cache /etc/nsswitch.conf /etc/protocols /etc/services /etc/ethertypes /etc/ssl/certs/ca-certificates.crt; do
  [ -e "$f" ] && etc="$etc $f"
done
mkdir -p "$out"
# -h: each path as it is named (the merged /usr's symlinks resolved into files), so that every
# name a program or ld.so asks for exists in the image.
# shellcheck disable=SC2086
tar -chf - $files $libs $etc "$xtables" 2>/dev/null | tar -xf - -C "$out"

# The users: root (the init container) and the agent's own, which sftp-server needs a passwd entry for.
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ntraffic-agent:x:1000:1000:traffic-agent:/tmp:/usr/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\ntraffic-agent:x:1000:\n' >"$out/etc/group"
mkdir -p "$out/tmp" "$out/run" "$out/app"
chmod 1777 "$out/tmp"
