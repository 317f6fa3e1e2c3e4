/**
 * The CLI as a user installs it: `scripts/pack-npm.sh` packs it, `npm install -g` puts it into an
 * empty prefix from a fresh folder, and the `kubectl telepresence` that kubectl's plugin discovery
 * finds there (the repository's dist/bin kept off PATH) installs the traffic-manager if needed,
 * connects and intercepts on the test cluster.
 *
 * Leaves the manager installed (other suites share it); one namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { answeredOnlyBy } from '../src/fresh-gets.js';
import { createKube } from '../src/kube.js';
import { namespace, shopAndClient } from '../src/manifests.js';
import { installNpmGlobal, npmGlobalLayout, packNpm } from '../src/npm-package.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(15 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-npm-${randomBytes(3).toString('hex')}`;
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'tp-npm-e2e-'));
const prefix = join(work, 'prefix');
let cli: TelepresenceCli | undefined;

const app = shopAndClient(ns);

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), ...app]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/shop', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
});

t.teardown(async () => {
  await cli?.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  rmSync(work, { recursive: true, force: true });
});

t.test('the packed CLI, installed with npm -g into an empty prefix, is found by kubectl and intercepts', async (t) => {
  const { result: packed, tarball } = await packNpm(repoRoot, join(work, 'release'));
  t.equal(packed.exitCode, 0, `pack-npm.sh: ${packed.stderr}`);
  t.equal(tarball, join(work, 'release', `telepresence-ts-${VERSION}.tgz`), 'the tarball is named after the package and version');

  // From a folder of its own, as a user would: nothing of the repository around it.
  const cwd = join(work, 'fresh');
  mkdirSync(cwd);
  const installed = await installNpmGlobal(tarball, prefix, cwd);
  t.equal(installed.exitCode, 0, `npm install -g: ${installed.stderr}`);
  const { packageDir, bin } = npmGlobalLayout(prefix);
  t.notOk(existsSync(join(packageDir, 'node_modules')), 'no dependency was installed with it: the CLI is bundled');
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string; dependencies?: object; devDependencies?: object };
  t.equal(pkg.version, VERSION);
  t.equal(pkg.dependencies, undefined, 'it names no dependencies');
  t.equal(pkg.devDependencies, undefined, 'nor dev dependencies');

  cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns, binDir: bin });
  const env = { ...process.env, PATH: `${bin}:${(process.env['PATH'] ?? '').split(':').filter((d) => d !== join(repoRoot, 'dist', 'bin')).join(':')}` };
  const plugins = await processRunner.run('kubectl', ['plugin', 'list'], { env, timeoutMs: 30_000 });
  t.match(plugins.stdout, new RegExp(`^${join(bin, 'kubectl-telepresence').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), "kubectl's plugin discovery finds it in the prefix");
  t.match(await cli.ok(['version']), new RegExp(`Client: v${VERSION.replace(/\./g, '\\.')}`), '`kubectl telepresence version` is the packed one');

  await cli.ok(['install'], 300_000);
  await interceptsWith(t, cli);
  await cli.ok(['quit']);
});

t.test('the same installed CLI on the other supported Node.js line, daemon included', async (t) => {
  const found = await processRunner.run('bash', [join(repoRoot, 'test', 'cluster', 'lib', 'node-dist.sh')], { timeoutMs: 300_000 });
  t.equal(found.exitCode, 0, `node-dist.sh: ${found.stderr}`);
  const nodeDir = found.stdout.trim();
  const other = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns, binDir: npmGlobalLayout(prefix).bin, pathFirst: [nodeDir] });
  t.teardown(() => other.dispose());
  const nodeVersion = (await processRunner.run(join(nodeDir, 'node'), ['--version'], { timeoutMs: 30_000 })).stdout.trim();
  t.not(nodeVersion.split('.')[0], process.version.split('.')[0], `another major version than this test's Node (${nodeVersion} against ${process.version})`);
  await interceptsWith(t, other);
  t.match(other.daemonLog(Number.MAX_SAFE_INTEGER), new RegExp(`daemon v${VERSION.replace(/\./g, '\\.')} \\(pid \\d+, Node ${nodeVersion.replace(/\./g, '\\.')}\\)`), `the daemon the CLI started runs on Node ${nodeVersion}`);
  await other.ok(['quit']);
});

/** connect, a global intercept of shop to a server here, requests through it, leave, status. */
async function interceptsWith(t: Test, cli: TelepresenceCli): Promise<void> {
  await cli.ok(['connect']);
  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: 'workstation' })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as AddressInfo).port;
  await cli.ok(['intercept', 'shop', '--port', `${port}:http`, '--mount=false'], 300_000);
  const answers = await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, 'workstation');
  t.strictSame(answers, Array(10).fill('workstation'), 'requests to the Service reach the workstation');
  await cli.ok(['leave', `shop-${ns}`]);
  const status = await cli.ok(['status']);
  t.match(status, /^Connection: connected to context /m, `status from the packed CLI: ${status.split('\n')[0] ?? ''}`);
}
