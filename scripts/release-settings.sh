# shellcheck shell=bash disable=SC2034
# Where a public release of telepresence-ts is published: the one place to change for a fork.
# Sourced by the release scripts; each value can be overridden from the environment.

# The krew manifest's download links: ${TP_RELEASE_URL}/<archive>, for the version released.
TP_RELEASE_URL=${TP_RELEASE_URL:-https://github.com/telepresence-ts/telepresence-ts/releases/download/v${TP_RELEASE_VERSION:?}}
# kubectl plugin name and homepage, as krew shows them.
TP_KREW_NAME=${TP_KREW_NAME:-telepresence}
TP_HOMEPAGE=${TP_HOMEPAGE:-https://github.com/telepresence-ts/telepresence-ts}
# krew's own tools (the manifest validator, and krew for the install check), from the Go module proxy.
TP_KREW_VERSION=${TP_KREW_VERSION:-v0.4.3}
# Where the release scripts cache what they build (as the cluster harness does).
TP_CACHE=${TP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telepresence-ts}
