#!/usr/bin/env bash
# Turns a fresh `debootstrap --variant=minbase` tree into a small container root filesystem,
# the way Debian's official "slim" images (debuerreotype) do: no apt caches or package
# lists, no docs/man/info/locales (and dpkg told not to install them later), container apt
# settings, apt sources in deb822 form, and nothing of the build host left behind.
# Run by build.sh on the host (no chroot needed). Its content is part of the rootfs cache
# key, so editing it rebuilds the image.
#
# usage: finalize.sh ROOTFS SUITE MIRROR SECURITY_MIRROR VALID_UNTIL_OFF(0|1)
set -euo pipefail
root=$1 suite=$2 mirror=$3 security_mirror=$4 valid_until_off=$5

[ -x "$root/usr/bin/dpkg" ] || { echo "finalize.sh: $root is not a debootstrapped tree" >&2; exit 1; }

# --- apt: sources and container-friendly settings -------------------------------------
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Same settings as the official Debian images (see their /etc/apt/apt.conf.d/docker-*).
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"

# A snapshot mirror (as on the test machines) serves Release files whose Valid-Until has
# passed; the host's apt is configured to accept that, so the image's apt must be too or
# `apt-get update` inside it fails. build.sh passes 1 only when the host has that setting.
if [ "$valid_until_off" = 1 ]; then
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    >"$root/etc/apt/apt.conf.d/99tp-snapshot-mirror"
fi

# --- slim: no docs, man pages, info, locales (now and for later installs) --------------
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# keep the image small: no documentation or translations (copyright files are kept)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
for d in man groff info lintian linda; do
  if [ -d "$root/usr/share/$d" ]; then find "$root/usr/share/$d" -mindepth 1 -delete; fi
done
if [ -d "$root/usr/share/locale" ]; then
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
fi

# --- caches, lists, logs, backups ---------------------------------------------------------
rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial/*.deb "$root"/var/cache/apt/*.bin
find "$root/var/lib/apt/lists" -mindepth 1 -maxdepth 1 -type f -delete
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
rm -rf "$root/var/cache/man" "$root/var/log/apt/"* "$root/var/log/bootstrap.log"
find "$root/var/log" -type f \( -name '*.log' -o -name 'lastlog' -o -name 'wtmp' -o -name 'btmp' \) -exec truncate -s 0 {} +
rm -rf "$root/tmp/"* "$root/var/tmp/"* "$root/root/".bash_history 2>/dev/null || true

# --- nothing of the build host --------------------------------------------------------------
# The container runtime bind-mounts its own resolv.conf, hosts and hostname.
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
echo localhost >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
if [ -f "$root/etc/machine-id" ]; then : >"$root/etc/machine-id"; fi
# debootstrap may leave a policy-rc.d from its run; containers have no init to manage
# services anyway, so make the usual "don't start services on install" rule explicit.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
