#!/usr/bin/env bash
# Checks the GitHub Actions workflows with actionlint: their syntax, the expressions in `${{ }}`,
# the `needs:` graph, the inputs of the actions they use, and the workflow's permission scopes.
# actionlint is built from the Go module proxy once per version (cached under
# ~/.cache/telepresence-ts/actionlint/<version>/), as scripts/krew-tools.sh builds krew, so a
# machine with Go needs nothing else.
#
# actionlint checks the `run:` scripts with shellcheck when shellcheck is on PATH; without it,
# that one rule is left out, silently, and everything else is still checked. Building actionlint
# needs Go 1.25 or newer.
#
# Usage: bash scripts/actionlint.sh [actionlint option...] [workflow file...]
#        (no file named: every .github/workflows/*.yml; the exit code is actionlint's, 1 when it
#        found anything)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TP_RELEASE_VERSION=unused
# shellcheck source=release-settings.sh
. "$ROOT/scripts/release-settings.sh"
version=${TP_ACTIONLINT_VERSION:-v1.7.12}
bin=$TP_CACHE/actionlint/$version

if [ ! -x "$bin/actionlint" ]; then
  command -v go >/dev/null || { echo "error: building actionlint needs Go (https://go.dev/dl/)" >&2; exit 1; }
  GOFLAGS=-mod=mod GOBIN=$bin go install "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2
fi

named=false
for arg in "$@"; do
  case $arg in *.yml | *.yaml | -) named=true ;; esac
done
if ! $named; then
  # The project's workflows by name, from the root so that findings show short paths.
  cd "$ROOT"
  set -- "$@" .github/workflows/*.yml
fi
exec "$bin/actionlint" "$@"
