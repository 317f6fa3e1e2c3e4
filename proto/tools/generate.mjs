#!/usr/bin/env node
// Regenerates the TypeScript stubs under src/gen from the .proto files, using only npm packages:
// @bufbuild/buf compiles the .proto files (it embeds its own compiler, so no protoc) and runs
// ts-proto's protoc-gen-ts_proto as a local plugin (options in buf.gen.yaml).
//
//   node tools/generate.mjs           replace src/gen with freshly generated code
//   node tools/generate.mjs --check   fail when src/gen differs from what generation gives
//
// Both generate into a temporary folder first, so a failed generation never leaves src/gen half
// written and --check never touches the work tree.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROTO = join(dirname(fileURLToPath(import.meta.url)), '..');
const GEN = join(PROTO, 'src', 'gen');
const BIN = join(PROTO, '..', 'node_modules', '.bin');

/** Relative paths of every file under dir, sorted; empty when dir does not exist. */
function listFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}

function generateInto(outDir) {
  const result = spawnSync(join(BIN, 'buf'), ['generate', '--output', outDir], {
    cwd: PROTO,
    stdio: 'inherit',
    env: { ...process.env, PATH: `${BIN}${delimiter}${process.env.PATH ?? ''}` },
  });
  if (result.error) {
    throw result.error;
  }
  if (result.status !== 0) {
    throw new Error(`buf generate exited with ${result.signal ?? `code ${result.status}`}`);
  }
  return join(outDir, 'src', 'gen');
}

/** Human-readable differences between two trees of generated files. */
function diffTrees(want, have) {
  const wantFiles = listFiles(want);
  const haveFiles = listFiles(have);
  const problems = [];
  for (const f of wantFiles) {
    if (!haveFiles.includes(f)) {
      problems.push(`missing: src/gen/${f}`);
    } else if (!readFileSync(join(want, f)).equals(readFileSync(join(have, f)))) {
      problems.push(`stale:   src/gen/${f}`);
    }
  }
  for (const f of haveFiles) {
    if (!wantFiles.includes(f)) {
      problems.push(`extra:   src/gen/${f}`);
    }
  }
  return problems;
}

function main() {
  const check = process.argv.includes('--check');
  const tmp = mkdtempSync(join(tmpdir(), 'tp-proto-gen-'));
  try {
    const fresh = generateInto(tmp);
    if (check) {
      const problems = diffTrees(fresh, GEN);
      if (problems.length > 0) {
        process.stderr.write(`proto: generated code is out of date:\n  ${problems.join('\n  ')}\n`);
        process.stderr.write('hint: run `npm run -w proto generate` and commit the result\n');
        return 1;
      }
      process.stdout.write(`proto: src/gen is up to date (${listFiles(GEN).length} files)\n`);
      return 0;
    }
    rmSync(GEN, { recursive: true, force: true });
    cpSync(fresh, GEN, { recursive: true });
    process.stdout.write(`proto: generated ${listFiles(GEN).length} files into src/gen\n`);
    return 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = main();
