#!/usr/bin/env bash
# Prints the intercept figures (connect, warm and cold intercept, round trip (global and personal)
# and throughput against kubectl port-forward, requests/s under concurrency, traffic-agent memory)
# on the cluster `npm run cluster:up` made.
#   bash test/bench/intercept.sh
# Knobs: TP_BENCH_PARTS (all: connect,cold,pulled,evicted,warm,trips,personal,wiretap,relayed,concurrency,memory),
# TP_BENCH_CONNECT_RUNS (5), TP_BENCH_WARM_RUNS (5), TP_BENCH_COLD_RUNS (3),
# TP_BENCH_REQUESTS (1000), TP_BENCH_BULK_MB (256), TP_BENCH_SKIP_ROUTED=1 (no ClusterIP route),
# TP_BENCH_CPU=1 (CPU seconds per GB moved, process by process, for each transfer),
# TP_BENCH_LOAD_REQUESTS (3000) and TP_BENCH_CONCURRENCY (16) for the concurrency figures,
# TP_BENCH_MEMORY_MB (1024: moved through an intercept for the memory figures, without trips).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
npm run --silent build >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The benchmark is TypeScript like the suites; esbuild makes it one file node runs directly.
node_modules/.bin/esbuild test/bench/intercept-bench.ts --bundle --platform=node --target=node20 \
  --format=esm --outfile="$out/bench.mjs" --log-level=warning \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
node "$out/bench.mjs"
