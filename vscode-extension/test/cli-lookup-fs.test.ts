/**
 * The lookup on the real file system, with the CLI installed as a user installs it: the packed npm
 * package in a prefix of its own (`npm install -g`, whose bin links into lib/node_modules), and a
 * build's dist/bin. Needs a built dist/ and Go (packing builds the packet engine).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { installNpmGlobal, npmGlobalLayout, packNpm } from '../../test/src/npm-package.js';
import { cliProblem, findCli } from '../src/cli-bundle.js';
import { nodeCliLookupFs } from '../src/cli-lookup-fs.js';

const ROOT = resolve(import.meta.dirname, '../..');
// The release's version: core's VERSION is a development one in unbundled tests.
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const built = existsSync(join(ROOT, 'dist', 'kubectl-telepresence.js'));

t.setTimeout(10 * 60_000);

t.test('the CLI installed from the npm package is found through its bin link, with its version', { skip: built ? false : 'dist/ is not built (npm run build)' }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'tp-cli-lookup-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const { result: packed, tarball } = await packNpm(ROOT, join(work, 'release'));
  t.equal(packed.exitCode, 0, `pack-npm.sh: ${packed.stderr}`);
  const fresh = join(work, 'fresh');
  mkdirSync(fresh);
  const prefix = join(work, 'prefix');
  const installed = await installNpmGlobal(tarball, prefix, fresh);
  t.equal(installed.exitCode, 0, `npm install -g: ${installed.stderr}`);
  const { bin, packageDir } = npmGlobalLayout(prefix);
  const shim = join(bin, 'kubectl-telepresence');

  const found = findCli({ pathEnv: `/nonexistent:${bin}:/usr/bin`, version: VERSION }, nodeCliLookupFs);
  t.same(found.found, { path: shim, bundle: join(realpathSync(packageDir), 'kubectl-telepresence.js'), version: VERSION }, 'found on PATH');

  const named = findCli({ pathEnv: '', setting: shim, version: VERSION }, nodeCliLookupFs);
  t.equal(named.found?.path, shim, 'and by telepresence.cliPath');

  const other = findCli({ pathEnv: bin, version: '0.0.1' }, nodeCliLookupFs);
  t.equal(other.found, undefined, 'an extension of another version does not use it');
  t.match(cliProblem(other)?.reason, `the kubectl-telepresence on PATH is v${VERSION} (${shim}), and this extension is v0.0.1`);
  t.match(cliProblem(other)?.fix, 'npm install -g telepresence-ts@0.0.1');
});

t.test("a build's dist/bin is found, with the version the build wrote", { skip: built ? false : 'dist/ is not built (npm run build)' }, (t) => {
  const got = findCli({ pathEnv: join(ROOT, 'dist', 'bin'), version: VERSION }, nodeCliLookupFs);
  t.equal(got.found?.bundle, join(realpathSync(join(ROOT, 'dist')), 'kubectl-telepresence.js'));
  t.equal(got.found?.version, VERSION);
  t.end();
});
