#!/usr/bin/env bash
# Packages the VS Code extension into dist/telepresence-ts.vsix.
#
#   bash scripts/package-vsix.sh [out.vsix]
#
# Builds first (`npm run build` bundles vscode-extension/dist/extension.js), then runs @vscode/vsce,
# which also validates the manifest: it refuses an invalid package.json (bad engines, unknown
# activation targets, SVG icons, ...), so a green run means the manifest is publishable.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/dist/telepresence-ts.vsix}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

cd "$ROOT"
echo "==> npm run build"
npm run --silent build

[ -f vscode-extension/dist/extension.js ] || { echo "error: vscode-extension/dist/extension.js was not built" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"

echo "==> vsce package -> $OUT"
# --no-dependencies: esbuild bundled everything the extension needs into dist/extension.js, and
#   vsce's own dependency walk (npm list) does not understand npm workspaces anyway.
# --allow-missing-repository / --skip-license: the project has no public repository URL or LICENSE
#   file yet; without these flags vsce stops at an interactive y/N prompt, which hangs CI.
#   The manifest's "license" field still states Apache-2.0.
cd vscode-extension
"$ROOT/node_modules/.bin/vsce" package --no-dependencies --allow-missing-repository --skip-license \
  --out "$OUT"
echo "==> $OUT"
