#!/usr/bin/env bash
# Installs what this project needs on a Debian/Ubuntu machine: the Debian packages of the local
# test cluster and image builds, and the npm packages of the workspace. Idempotent: a second run
# installs nothing. The Kubernetes binaries are built (and cached) by `npm run cluster:up`.
set -euo pipefail
cd "$(dirname "$0")/.."

# package:probe pairs: the package is installed when the probe (a command or a path) is missing.
packages="etcd-server:etcd containerd:containerd runc:runc containernetworking-plugins:/usr/lib/cni/bridge
iptables:iptables docker.io:dockerd debootstrap:debootstrap conntrack:conntrack curl:curl openssl:openssl
iproute2:ss gcc:gcc libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a
sshfs:sshfs fuse3:fusermount3 openssh-sftp-server:/usr/lib/openssh/sftp-server
dnsmasq-base:/usr/sbin/dnsmasq"
missing=()
for entry in $packages; do
  probe=${entry#*:}
  if [ "${probe#/}" != "$probe" ]; then [ -e "$probe" ] || missing+=("${entry%%:*}"); else command -v "$probe" >/dev/null || missing+=("${entry%%:*}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "hint:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "error: Go is not installed; it builds the test cluster's Kubernetes binaries" >&2; echo "hint:  install Go 1.24 or newer from https://go.dev/dl" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "error: kubectl is not installed" >&2; echo "hint:  install kubectl 1.32 or newer (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.tp-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
