#!/usr/bin/env node
// Writes the Helm chart in cluster/chart/ from cluster/src/chart/chart-gen.ts (`npm run chart`).
// esbuild bundles the generator, as test/bench/intercept.sh bundles the benchmark, so that node
// runs its TypeScript directly. Template files the generator no longer makes are removed.
//
//   node tools/gen-chart.mjs
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHART = join(ROOT, 'cluster', 'chart');

const work = mkdtempSync(join(tmpdir(), 'tp-chart-'));
try {
  const outfile = join(work, 'chart-gen.mjs');
  await build({
    entryPoints: [join(ROOT, 'cluster', 'src', 'chart', 'chart-gen.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outfile,
    logLevel: 'warning',
    // node-forge and client-node are CommonJS and call require().
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const { chartFiles } = await import(pathToFileURL(outfile).href);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const files = chartFiles(version);
  rmSync(join(CHART, 'templates'), { recursive: true, force: true });
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(CHART, path)), { recursive: true });
    writeFileSync(join(CHART, path), text);
  }
  console.log(`wrote ${Object.keys(files).length} files to ${CHART} (templates: ${readdirSync(join(CHART, 'templates')).join(', ')})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
