#!/usr/bin/env bash
# Installs a real VS Code that tests can drive: code-server 4.100.3 plus Debian's Chromium, into a
# cache folder, without downloading anything outside the npm registry and Debian's packages.
#
#   bash scripts/install-code-server.sh            # install (or nothing, when already installed)
#   bash scripts/install-code-server.sh --verify   # also re-check an existing install
#
# Idempotent: the finished install is stamped, and a second run only checks the stamp (instant).
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/telepresence-ts/code-server-4.100.3 (override the whole
# path with TP_CODE_SERVER_DIR).
#
# Why it is done by hand rather than by code-server's own postinstall:
#   - 4.100.3 is the last code-server release that runs on Node 20 (later ones require Node 22).
#   - Its postinstall and @vscode/ripgrep's download prebuilt binaries from GitHub, which this
#     workplace cannot reach; so everything is installed with --ignore-scripts, Debian's rg stands
#     in for the downloaded one, and the native modules are rebuilt from source against the local
#     Node headers (npm_config_nodedir) instead of downloaded headers.
set -euo pipefail

VERSION=4.100.3
CACHE=${TP_CODE_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/telepresence-ts/code-server-$VERSION}
STAMP=$CACHE/.tp-installed
CS=$CACHE/node_modules/code-server
BIN=$CS/out/node/entry.js

started=$(date +%s)
step_started=$started
step() {
  local now
  now=$(date +%s)
  if [ -n "${step_name:-}" ]; then echo "    done in $((now - step_started))s"; fi
  step_name=$1
  step_started=$now
  if [ -n "$1" ]; then echo "==> $1"; fi
}
finish() {
  step ''
  echo "==> code-server $VERSION ready in $(($(date +%s) - started))s: $CACHE"
}

# --- Debian packages -------------------------------------------------------------------------
# package:probe pairs: the package is installed when its probe (a command or a path) is missing.
packages="chromium:chromium ripgrep:rg curl:curl build-essential:make python3:python3
libkrb5-dev:/usr/include/krb5.h libsecret-1-dev:/usr/include/libsecret-1
libx11-dev:/usr/include/X11/Xlib.h libxkbfile-dev:/usr/include/X11/extensions/XKBfile.h"
missing=()
for entry in $packages; do
  probe=${entry#*:}
  if [ "${probe#/}" != "$probe" ]; then [ -e "$probe" ] || missing+=("${entry%%:*}"); else command -v "$probe" >/dev/null || missing+=("${entry%%:*}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "hint:  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Serves the workbench with --auth none on 127.0.0.1 (a free port: code-server reports the port it
# got for :0) and checks the built-in JavaScript debugger is there. Throwaway config, user-data and
# extensions folders, so the check leaves nothing behind (not even ~/.config/code-server).
verify() {
  step "verify: serve the workbench on 127.0.0.1, js-debug present"
  [ -f "$CS/lib/vscode/extensions/ms-vscode.js-debug/package.json" ] || { echo "error: the built-in ms-vscode.js-debug is missing" >&2; return 1; }
  local tmp pid url="" i
  tmp=$(mktemp -d)
  mkdir -p "$tmp/workspace"
  node "$BIN" --config "$tmp/config.yaml" --version
  node "$BIN" --config "$tmp/config.yaml" --auth none --bind-addr 127.0.0.1:0 --user-data-dir "$tmp/user-data" \
    --extensions-dir "$tmp/extensions" --disable-telemetry --disable-update-check "$tmp/workspace" >"$tmp/log" 2>&1 &
  pid=$!
  # Startup takes about a second here; 30 s leaves room for a busy shared machine.
  for i in $(seq 1 300); do
    url=$(sed -n 's|.*HTTP server listening on \(http://[0-9.:]*\)/.*|\1|p' "$tmp/log")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  local ok=0
  if [ -n "$url" ] && curl -fsSL "$url/" | grep -q 'workbench/workbench.js'; then ok=1; fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" != 1 ]; then
    echo "error: code-server did not serve the workbench; its log:" >&2
    cat "$tmp/log" >&2
    rm -rf "$tmp"
    return 1
  fi
  echo "    served the workbench at $url; ms-vscode.js-debug $(node -p "require('$CS/lib/vscode/extensions/ms-vscode.js-debug/package.json').version")"
  rm -rf "$tmp"
}

if [ -f "$STAMP" ] && [ -f "$BIN" ]; then
  echo "==> code-server $VERSION already installed: $CACHE"
  if [ "${1:-}" = --verify ]; then verify; finish; fi
  exit 0
fi

# --- npm packages ----------------------------------------------------------------------------
# node-gyp would otherwise download Node's headers; Node's own (Debian's or NodeSource's nodejs
# ships them under <prefix>/include/node) are the right ones for the running node.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir=$node_prefix
else
  echo "warning: no Node headers under $node_prefix/include/node; node-gyp will try to download them" >&2
fi
# Install scripts that call npx would otherwise stop at its "Ok to proceed?" prompt.
export npm_config_yes=true
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
# node-gyp's parallel make jobs: the machine's two cores are shared with other work.
export JOBS=${JOBS:-2}

mkdir -p "$CACHE"
cd "$CACHE"
[ -f package.json ] || echo '{ "name": "tp-code-server-cache", "private": true }' > package.json

step "npm install code-server@$VERSION (scripts off)"
npm install --no-save --ignore-scripts --loglevel=error "code-server@$VERSION"

step "lib/vscode: npm install --omit=dev (scripts off)"
(cd "$CS/lib/vscode" && npm install --omit=dev --ignore-scripts --loglevel=error)

step "lib/vscode: Debian's rg as @vscode/ripgrep's binary"
mkdir -p "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin"
cp -f "$(command -v rg)" "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"

step "lib/vscode: rebuild native modules"
(cd "$CS/lib/vscode" && npm rebuild --loglevel=error \
  kerberos node-pty @vscode/spdlog @parcel/watcher native-watchdog @vscode/deviceid)

step "lib/vscode/extensions: npm install --omit=dev (scripts off)"
(cd "$CS/lib/vscode/extensions" && npm install --omit=dev --ignore-scripts --loglevel=error)

step "lib/vscode: link node_modules.asar"
# VS Code's loader looks its dependencies up in node_modules.asar; code-server ships them unpacked.
ln -sfn node_modules "$CS/lib/vscode/node_modules.asar"

step "rebuild argon2 (code-server's password hashing)"
npm rebuild --loglevel=error argon2

verify
date -u +%FT%TZ > "$STAMP"
finish
