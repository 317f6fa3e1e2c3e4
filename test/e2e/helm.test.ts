/**
 * The Helm chart on the real cluster with the real helm (scripts/helm-tools.sh): `helm install`
 * of cluster/chart puts up the same traffic-manager and agent-injector as `kubectl telepresence
 * install`, the CLI connects to it and intercepts, and `helm uninstall` removes every object the
 * chart made.
 *
 * The shared manager that other suites use is removed first (Helm does not take over objects
 * it did not make) and put back with the CLI at the end; one namespace of its own, deleted at the
 * end.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { answeredOnlyBy } from '../src/fresh-gets.js';
import { createKube } from '../src/kube.js';
import { namespace, shopAndClient } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-helm-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const RELEASE = 'telepresence';
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
let helm = '';
// Default values: the command docs/helm.md gives.
const VALUES: string[] = [];

/** helm with the cluster's kubeconfig; its result, whatever the exit code. */
const runHelm = (args: readonly string[]) =>
  processRunner.run(helm, [...args, '--kubeconfig', cluster.kubeconfig], { timeoutMs: 300_000, env: { ...process.env, HELM_CACHE_HOME: join(repoRoot, 'dist', 'helm-cache') } });

/** kind/namespace/name of every object the chart renders with the values the test installs with. */
async function chartObjects(): Promise<{ kind: string; name: string; namespace?: string }[]> {
  const rendered = await processRunner.run(helm, ['template', RELEASE, join(repoRoot, 'cluster', 'chart'), '--namespace', MANAGER_NS, ...VALUES], { timeoutMs: 120_000 });
  if (rendered.exitCode !== 0) throw new Error(`helm template: ${rendered.stderr}`);
  return parseAllDocuments(rendered.stdout)
    .map((doc) => doc.toJS() as { kind?: string; metadata?: { name: string; namespace?: string } } | null)
    .filter((o) => o?.kind !== undefined && o.metadata !== undefined)
    .map((o) => ({ kind: o?.kind ?? '', name: o?.metadata?.name ?? '', ...(o?.metadata?.namespace !== undefined ? { namespace: o.metadata.namespace } : {}) }));
}

t.before(async () => {
  const tools = await processRunner.run('bash', [join(repoRoot, 'scripts', 'helm-tools.sh'), '4'], { timeoutMs: 900_000 });
  if (tools.exitCode !== 0) throw new Error(`helm-tools.sh: ${tools.stderr}`);
  helm = tools.stdout.trim();
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), ...shopAndClient(ns)]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/shop', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  // The manager the other suites installed with the CLI: Helm refuses to take its objects over.
  await cli.ok(['uninstall', '--everything'], 300_000);
});

t.teardown(async () => {
  await cli.run(['quit']);
  await runHelm(['uninstall', RELEASE, '--namespace', MANAGER_NS, '--wait']);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  // The shared manager back, as the other suites expect it.
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.dispose();
});

t.test('helm install of the chart: the CLI connects to its manager and intercepts; helm uninstall leaves nothing of it', async (t) => {
  const installed = await runHelm(['install', RELEASE, join(repoRoot, 'cluster', 'chart'), '--namespace', MANAGER_NS, '--create-namespace', ...VALUES, '--wait', '--timeout', '3m']);
  t.equal(installed.exitCode, 0, `helm install: ${installed.stderr}`);
  const status = await runHelm(['status', RELEASE, '--namespace', MANAGER_NS, '-o', 'json']);
  t.match(JSON.parse(status.stdout) as object, { info: { status: 'deployed' } }, 'the release is deployed');

  await cli.ok(['connect']);
  const version = await cli.json<{ manager?: { version: string } }>(['version']);
  t.ok(version.manager?.version, `the CLI reaches the chart's manager (v${version.manager?.version ?? '?'})`);
  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: 'workstation' })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as AddressInfo).port;
  await cli.ok(['intercept', 'shop', '--port', `${port}:http`, '--mount=false'], 300_000);
  t.strictSame(await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, 'workstation'), Array(10).fill('workstation'), 'requests to the Service reach the workstation');
  await cli.ok(['leave', `shop-${ns}`]);
  // The agents are the manager's, not the chart's: removed with the CLI before the chart goes.
  await cli.ok(['uninstall', '--all-agents'], 300_000);
  await cli.ok(['quit']);

  const objects = await chartObjects();
  t.ok(objects.length >= 10, `the chart renders ${objects.length} objects`);
  const uninstalled = await runHelm(['uninstall', RELEASE, '--namespace', MANAGER_NS, '--wait']);
  t.equal(uninstalled.exitCode, 0, `helm uninstall: ${uninstalled.stderr}`);
  const left: string[] = [];
  for (const o of objects) {
    const args = ['get', o.kind, o.name, '--ignore-not-found', '-o', 'name', ...(o.namespace !== undefined ? ['-n', o.namespace] : [])];
    if ((await kube.kubectl(args)).trim() !== '') left.push(`${o.kind}/${o.name}`);
  }
  t.strictSame(left, [], 'no object the chart made remains');
});
