#!/usr/bin/env node
// Runs node-tap over the test files found under the given paths, streams tap's TAP output, and
// closes with the plain line `N passed, N failed[, N skipped]` that CI recognises.
//
//   node tools/run-tap.mjs <path>... [--exclude <path>]... [-- <tap option>...]
//
// Test files are `*.test.{ts,mts,js,mjs}`. They are found here rather than by tap so that helper
// modules and fakes can sit beside the tests without being run as tests, and so that a run that
// finds nothing fails instead of passing vacuously. Directories named node_modules, dist and
// fixtures (inputs to tests, never tests) are not searched.
//
// The counts come from parsing tap's own TAP stream with tap-parser (the parser tap itself uses):
// every leaf assertion counts once; a subtest that failed without any failing assertion inside it
// (a crash, a timeout, a plan mismatch, "no tests found") counts as one failure; a whole file
// skipped counts as one skip. The exit code is non-zero when anything failed, when tap itself
// exited non-zero, or when no assertion ran at all.
//
// With TP_TAP_RESULTS=<file> set, the counts are also appended to that file as one line
// `<passed> <failed>`, so that a script running several tap runs can print one total.
import { spawn } from 'node:child_process';
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser } from 'tap-parser';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEST_FILE = /\.test\.(ts|mts|js|mjs)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'fixtures', '.tap']);

function parseArgs(argv) {
  const paths = [];
  const excludes = [];
  let tapArgs = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      tapArgs = argv.slice(i + 1);
      break;
    }
    if (arg === '--exclude') {
      const value = argv[++i];
      if (value === undefined) {
        throw new Error('--exclude needs a path');
      }
      excludes.push(resolve(ROOT, value));
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${arg} (tap options go after --)`);
    } else {
      paths.push(resolve(ROOT, arg));
    }
  }
  if (paths.length === 0) {
    throw new Error('usage: run-tap.mjs <path>... [--exclude <path>]... [-- <tap option>...]');
  }
  return { paths, excludes, tapArgs };
}

function isExcluded(path, excludes) {
  return excludes.some((ex) => path === ex || path.startsWith(ex + '/'));
}

function findTests(path, excludes, out) {
  if (isExcluded(path, excludes)) {
    return;
  }
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return; // A package without tests yet is not an error; an empty run is (see below).
  }
  if (stat.isFile()) {
    if (TEST_FILE.test(path)) {
      out.add(path);
    }
    return;
  }
  if (!stat.isDirectory()) {
    return;
  }
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory() && SKIP_DIRS.has(entry.name)) {
      continue;
    }
    findTests(join(path, entry.name), excludes, out);
  }
}

/** Counts results over a tap-parser tree; see the header for the rules. */
function countResults(root) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const attach = (parser, node) => {
    let lastChild;
    parser.on('child', (childParser) => {
      lastChild = { parent: node, failures: 0, leaves: 0 };
      attach(childParser, lastChild);
    });
    const fail = (from) => {
      counts.failed++;
      for (let n = from; n !== undefined; n = n.parent) {
        n.failures++;
      }
    };
    const leaf = (from) => {
      for (let n = from; n !== undefined; n = n.parent) {
        n.leaves++;
      }
    };
    parser.on('assert', (res) => {
      if (res.closingTestPoint) {
        const child = lastChild;
        lastChild = undefined;
        if (!res.ok && (child === undefined || child.failures === 0)) {
          leaf(node);
          fail(node);
        } else if ((res.skip || res.todo) && (child === undefined || child.leaves === 0)) {
          leaf(node);
          counts.skipped++;
        }
        return;
      }
      leaf(node);
      if (res.skip || res.todo) {
        counts.skipped++;
      } else if (res.ok) {
        counts.passed++;
      } else {
        fail(node);
      }
    });
  };
  attach(root, { parent: undefined, failures: 0, leaves: 0 });
  return counts;
}

function summaryLine({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : '');
}

function report(counts) {
  process.stdout.write('\n' + summaryLine(counts) + '\n');
  const resultsFile = process.env.TP_TAP_RESULTS;
  if (resultsFile) {
    appendFileSync(resultsFile, `${counts.passed} ${counts.failed}\n`);
  }
}

async function main() {
  const { paths, excludes, tapArgs } = parseArgs(process.argv.slice(2));
  const found = new Set();
  for (const path of paths) {
    findTests(path, excludes, found);
  }
  const files = [...found].map((f) => relative(ROOT, f)).sort();
  if (files.length === 0) {
    process.stderr.write(`run-tap: no *.test.* files under ${paths.map((p) => relative(ROOT, p) || '.').join(', ')}\n`);
    report({ passed: 0, failed: 0, skipped: 0 });
    return 1;
  }

  const parser = new Parser();
  const counts = countResults(parser);
  let bailedOut = false;
  parser.on('bailout', () => {
    bailedOut = true;
  });
  const parsed = new Promise((resolveParsed) => parser.on('complete', resolveParsed));

  // The TAP reporter keeps tap's output parseable; it comes after the pass-through options so
  // that none of them can replace it.
  const tapBin = join(ROOT, 'node_modules', '.bin', 'tap');
  const child = spawn(tapBin, [...tapArgs, '--reporter=tap', ...files], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    parser.write(chunk);
  });
  const exit = await new Promise((resolveExit, rejectExit) => {
    child.on('error', rejectExit);
    child.on('close', (code, signal) => resolveExit({ code, signal }));
  });
  parser.end();
  await parsed;

  report(counts);
  if (exit.code !== 0) {
    process.stderr.write(`run-tap: tap exited with ${exit.signal ?? `code ${exit.code}`}\n`);
    return 1;
  }
  if (bailedOut || counts.failed > 0) {
    return 1;
  }
  if (counts.passed === 0) {
    process.stderr.write('run-tap: no test assertion ran\n');
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`run-tap: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
