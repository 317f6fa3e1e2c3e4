#!/usr/bin/env bash
# Builds the product's three cluster images, tagged with the CLI's version, and pushes them to a
# registry that clusters pull from; `kubectl telepresence install --registry` with the same
# HOST/PATH then points the cluster at them. Prints each image's digest and size last: the size
# on disk and the size a node downloads, and for the traffic-agent, which every intercepted node
# pulls, how much it carries beyond the Node runtime (its target: at most 10 MB).
#
# Usage: bash scripts/push-images.sh --registry HOST[:PORT][/PATH] [options]
#   --base-image IMAGE   the image the three are built FROM (default: the Dockerfiles' own,
#                        node:20-bookworm-slim); tp-local/base-node:bookworm is built here first
#   --platforms LIST     e.g. linux/amd64,linux/arm64: one multi-platform image each, with
#                        docker buildx (default: this machine's platform, any builder)
#   --no-build           dist/ is built already (skip `npm run build`)
#   --no-push            build and label only (sizes on disk, no digests)
# Writes what it pushed to dist/release/images.json: {registry, version, images: [{name, ref,
# digest, bytes, pulledBytes}]}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
die() { printf 'error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'hint:  %s\n' "$2" >&2; exit 2; }

registry="" base="" platforms="" build=true push=true
while [ $# -gt 0 ]; do
  case $1 in
    --registry) registry=${2:-}; shift 2 || die "--registry needs a value" "--registry registry.example.com/team" ;;
    --registry=*) registry=${1#*=}; shift ;;
    --base-image) base=${2:-}; shift 2 || die "--base-image needs a value" "--base-image node:20-bookworm-slim" ;;
    --base-image=*) base=${1#*=}; shift ;;
    --platforms) platforms=${2:-}; shift 2 || die "--platforms needs a value" "--platforms linux/amd64,linux/arm64" ;;
    --platforms=*) platforms=${1#*=}; shift ;;
    --no-build) build=false; shift ;;
    --no-push) push=false; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1" "bash scripts/push-images.sh --help" ;;
  esac
done
registry=${registry%/}
[ -n "$registry" ] || die "no registry given" "name the registry and path to push to, as in --registry ghcr.io/your-org"
case $registry in
  *://*) die "--registry $registry has a scheme" "give host[:port][/path] only, as in --registry ghcr.io/your-org" ;;
  *@* | */*:* | *[A-Z]*) die "--registry $registry is not a registry path (it has a tag, a digest or capitals)" "the tag is always the CLI's version; give host[:port][/path], as in --registry ghcr.io/your-org" ;;
esac
docker version >/dev/null 2>&1 || die "no Docker engine answers" "start Docker (or set DOCKER_HOST), then retry"

version=$(node -p "require('./package.json').version")
license=$(node -p "require('./package.json').license")
TP_RELEASE_VERSION=$version
# shellcheck source=release-settings.sh
. scripts/release-settings.sh
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
native=linux/$(docker version -f '{{.Server.Arch}}')

multi=false
if [ -n "$platforms" ] && [ "$platforms" != "$native" ]; then
  docker buildx version >/dev/null 2>&1 \
    || die "building for $platforms needs docker buildx, which is not installed" "install the buildx plugin (and QEMU for other architectures), or leave --platforms out to build for $native only"
  $push || die "--platforms with more than this machine's platform needs --push (buildx keeps multi-platform images in the registry only)" "leave out --no-push"
  multi=true
fi

if $build; then npm run -s build >/dev/null; fi
for program in manager injector agent; do
  [ -f "cluster/dist/$program.js" ] || die "cluster/dist/$program.js is missing" "run npm run build, or leave out --no-build"
done
if [ "$base" = tp-local/base-node:bookworm ]; then bash test/cluster/images/build.sh base-node >&2; fi

# name program description
IMAGES=(
  "traffic-manager manager The hub that clients and traffic-agents talk to"
  "agent-injector injector The admission webhook that adds the traffic-agent to pods"
  "traffic-agent agent The sidecar that takes an intercepted pod's traffic"
)
mkdir -p dist/release
results=()
for line in "${IMAGES[@]}"; do
  read -r name program description <<<"$line"
  ref=$registry/$name:$version
  args=(-f "cluster/images/$program.Dockerfile" -t "$ref"
    --label "org.opencontainers.image.title=telepresence-ts $name"
    --label "org.opencontainers.image.description=$description"
    --label "org.opencontainers.image.source=$TP_HOMEPAGE"
    --label "org.opencontainers.image.url=$TP_HOMEPAGE"
    --label "org.opencontainers.image.licenses=$license"
    --label "org.opencontainers.image.version=$version"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.created=$created")
  [ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
  printf '==> %s\n' "$ref" >&2
  if $multi; then
    docker buildx build --platform "$platforms" --push "${args[@]}" cluster >&2
    results+=("$name $ref $(docker buildx imagetools inspect "$ref" --format '{{.Manifest.Digest}}') 0 0")
    continue
  fi
  # The classic builder: every dockerd has it, and these Dockerfiles need nothing more.
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q "${args[@]}" cluster 2>&1); then
    printf '%s\n' "$out" >&2
    die "building $ref failed (output above)" "check that the base image $([ -n "$base" ] && echo "$base" || echo node:20-bookworm-slim) can be pulled or exists locally (--base-image)"
  fi
  [ "$(docker image inspect -f '{{.Config.User}}' "$ref")" != "" ] || die "$ref runs as root" "its Dockerfile must end with a USER that is not root"
  bytes=$(docker image inspect -f '{{.Size}}' "$ref")
  digest="" pulled=0
  if $push; then
    docker push -q "$ref" >/dev/null || die "could not push $ref" "check that $registry exists and that you are logged in to it (docker login ${registry%%/*})"
    digest=$(docker image inspect -f '{{join .RepoDigests " "}}' "$ref" | tr ' ' '\n' | grep -m1 "^$registry/$name@" | cut -d@ -f2)
    # What a node downloads: the compressed layers of the pushed manifest.
    pulled=$(docker manifest inspect --insecure "$ref" 2>/dev/null | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const m = JSON.parse(s); console.log((m.layers ?? []).reduce((n, l) => n + l.size, m.config?.size ?? 0)); })' || echo 0)
  fi
  results+=("$name $ref ${digest:--} $bytes $pulled")
done

# The Node runtime in the agent image, for the report: the node binary and every file it maps
# (the shared libraries), as the agent's own node sees them. The rest is what the agent adds.
runtime_bytes() { # IMAGE
  docker run --rm --network none --entrypoint node "$1" -e '
    const fs = require("node:fs");
    const files = new Set([process.execPath]);
    for (const line of fs.readFileSync("/proc/self/maps", "utf8").split("\n")) {
      const path = line.split(/\s+/)[5];
      if (path !== undefined && path.startsWith("/")) files.add(path);
    }
    console.log([...files].reduce((n, f) => n + fs.statSync(f).size, 0));' 2>/dev/null || echo 0
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
node - "$registry" "$version" "${results[@]}" >dist/release/images.json <<'JS'
const [registry, version, ...rows] = process.argv.slice(2);
const images = rows.map((row) => {
  const [name, ref, digest, bytes, pulledBytes] = row.split(' ');
  return { name, ref, digest: digest === '-' ? null : digest, bytes: Number(bytes), pulledBytes: Number(pulledBytes) };
});
process.stdout.write(`${JSON.stringify({ registry, version, images }, null, 2)}\n`);
JS
printf '\n%-16s %-12s %-12s %s\n' IMAGE "ON DISK" DOWNLOAD DIGEST
for row in "${results[@]}"; do
  read -r name ref digest bytes pulled <<<"$row"
  printf '%-16s %-12s %-12s %s\n' "$name" "$(mb "$bytes")" "$(mb "$pulled")" "$digest"
done
for row in "${results[@]}"; do
  read -r name ref _ bytes pulled <<<"$row"
  [ "$name" = traffic-agent ] && [ "$bytes" -gt 0 ] || continue
  runtime=$(runtime_bytes "$ref")
  [ "$runtime" -gt 0 ] || continue
  added=$((bytes - runtime))
  printf '\ntraffic-agent: %s on disk (%s to download), of which the Node runtime %s and the rest (the agent, iptables, sftp-server) %s; target: the rest at most 10.0 MB: %s\n' \
    "$(mb "$bytes")" "$(mb "$pulled")" "$(mb "$runtime")" "$(mb "$added")" "$([ "$added" -le 10000000 ] && echo met || echo MISSED)"
done
echo "wrote dist/release/images.json" >&2
$push && echo "install with: kubectl telepresence install --registry $registry"
