/**
 * The CLI's npm package as a user gets it: packed by `scripts/pack-npm.sh` and installed with
 * `npm install -g` into a prefix of the test's own. Used by the e2e suite that runs it on the
 * cluster and by the extension's check that it finds the installed CLI.
 */
import { join } from 'node:path';
import { processRunner, type RunResult } from './process-runner.js';

/** The package's name on npm (scripts/pack-npm.sh). */
export const NPM_PACKAGE = 'telepresence-ts';

export interface Packed {
  readonly result: RunResult;
  /** The tarball's path, which pack-npm.sh prints last; empty when it printed nothing. */
  readonly tarball: string;
}

/**
 * Packs the CLI into `outDir` from the built dist/ (`--no-build`: building is the caller's step,
 * and the build's outputs are shared with whoever else runs tests from the checkout).
 */
export async function packNpm(repoRoot: string, outDir: string): Promise<Packed> {
  // Five minutes: staging builds the packet engine for two architectures (Go, cold cache).
  const result = await processRunner.run('bash', [join(repoRoot, 'scripts', 'pack-npm.sh'), '--no-build', outDir], { timeoutMs: 300_000 });
  return { result, tarball: result.stdout.trim().split('\n').pop() ?? '' };
}

/** Where `npm install -g --prefix <prefix>` puts the package, and the folder of its bin link. */
export function npmGlobalLayout(prefix: string): { readonly packageDir: string; readonly bin: string } {
  return { packageDir: join(prefix, 'lib', 'node_modules', NPM_PACKAGE), bin: join(prefix, 'bin') };
}

/**
 * `npm install -g` of the tarball into `prefix`, run in `cwd` (a folder with nothing of the
 * repository around it, as a user's). Offline: the package has no dependencies to fetch.
 */
export function installNpmGlobal(tarball: string, prefix: string, cwd: string): Promise<RunResult> {
  return processRunner.run('npm', ['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], { cwd, timeoutMs: 120_000 });
}
