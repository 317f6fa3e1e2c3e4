/**
 * Composition root of the `kubectl-telepresence` binary: binds the real terminal and version, then
 * hands the command line to the CLI. The only place in the plugin that touches `process`.
 */
import { VERSION } from '@telepresence-ts/core';
import { hideBin } from 'yargs/helpers';
import { run } from './cli.js';
import type { Io } from './io.js';

const io: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

// exitCode rather than exit(): stdout may still be draining into a pipe.
process.exitCode = await run(hideBin(process.argv), { io, version: VERSION });
