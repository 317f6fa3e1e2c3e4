#!/usr/bin/env bash
# Prints the outbound-access figures (round trips, throughput and connection rate against
# kubectl port-forward, DNS lookups, connect until the first answer, the daemons' memory and
# CPU per GB) on the cluster `npm run cluster:up` made. Needs root: the workstation is a
# network namespace of its own that reaches only the API server.
#   bash test/bench/outbound.sh
# Knobs: TP_BENCH_CONNECT_RUNS (5 of each kind), TP_BENCH_REQUESTS (1000 round trips per path
# and kind), TP_BENCH_CONNS (600 connections per path and kind), TP_BENCH_DNS_LOOKUPS (500 per
# name), TP_BENCH_BULK_MB (256), TP_BENCH_BULK_RUNS (3, the best counts).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
npm run --silent build >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# One bundle that node runs directly; it runs itself again inside the namespace.
node_modules/.bin/esbuild test/bench/outbound-bench.ts --bundle --platform=node --target=node20 \
  --format=esm --outfile="$out/bench.mjs" --log-level=warning \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
node "$out/bench.mjs"
