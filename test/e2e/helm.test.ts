/**
 * The Helm chart on the real cluster with the real helm (scripts/helm-tools.sh): `helm install`
 * of cluster/chart puts up the same traffic-manager and agent-injector as `kubectl telepresence
 * install`, and the CLI connects to it and intercepts. `helm upgrade` after the webhook's
 * certificate expired makes a new one that the injector takes up without a restart. `helm
 * upgrade` to the next release (this source built again, see buildRelease) brings the agents
 * along and tells the old client. `helm uninstall` takes the agents out of the workloads first,
 * then removes every object the chart made.
 *
 * The shared manager that other suites use is removed first (Helm does not take over objects
 * it did not make) and put back with the CLI at the end; one namespace of its own, deleted at the
 * end.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { buildRelease, findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { answeredOnlyBy } from '../src/fresh-gets.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { startLocalEcho } from '../src/local-echo.js';
import { namespace, shopAndClient } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(30 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-helm-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const RELEASE = 'telepresence';
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const [major, minor] = VERSION.split('.').map(Number) as [number, number];
const NEXT = `${major}.${minor + 1}.0`;
let nextRoot = '';
let next: ReturnType<typeof createTelepresenceCli> | undefined;
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
  nextRoot = await buildRelease(repoRoot, cluster.kubeconfig, NEXT);
  next = createTelepresenceCli({ repoRoot, binDir: join(nextRoot, 'dist', 'bin'), kubeconfig: cluster.kubeconfig, namespace: ns });
  await kube.apply([namespace(ns), ...shopAndClient(ns)]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/shop', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  // The manager the other suites installed with the CLI: Helm refuses to take its objects over.
  await cli.ok(['uninstall', '--everything'], 300_000);
});

t.teardown(async () => {
  await cli.run(['quit']);
  await next?.dispose();
  if (nextRoot !== '') rmSync(nextRoot, { recursive: true, force: true });
  await runHelm(['uninstall', RELEASE, '--namespace', MANAGER_NS, '--wait']);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  // The shared manager back, as the other suites expect it.
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.dispose();
});

/** The traffic-agent images of the shop's live pods ('none' for a pod without one). */
async function shopAgents(): Promise<string[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', 'app=shop']);
  return list.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) => ((p.spec?.containers ?? []).find((c) => c.name === 'traffic-agent') as { image?: string } | undefined)?.image ?? 'none');
}

const chartDir = join(repoRoot, 'cluster', 'chart');

t.test('helm install of the chart: the CLI connects to its manager and intercepts', async (t) => {
  const installed = await runHelm(['install', RELEASE, chartDir, '--namespace', MANAGER_NS, '--create-namespace', ...VALUES, '--wait', '--timeout', '3m']);
  t.equal(installed.exitCode, 0, `helm install: ${installed.stderr}`);
  const status = await runHelm(['status', RELEASE, '--namespace', MANAGER_NS, '-o', 'json']);
  t.match(JSON.parse(status.stdout) as object, { info: { status: 'deployed' } }, 'the release is deployed');

  await cli.ok(['connect']);
  const version = await cli.json<{ manager?: { version: string } }>(['version']);
  t.equal(version.manager?.version, VERSION, `the CLI reaches the chart's manager (v${version.manager?.version ?? '?'})`);
  const local = await startLocalEcho(t, { name: 'workstation' });
  await cli.ok(['intercept', 'shop', '--port', `${local.port}:http`, '--mount=false'], 300_000);
  t.strictSame(await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, 'workstation'), Array(10).fill('workstation'), 'requests to the Service reach the workstation');
  await cli.ok(['leave', `shop-${ns}`]);
});

t.test('an expired webhook certificate: helm upgrade makes a new one, which the injector serves without a restart', async (t) => {
  const secret = () => kube.json<{ metadata: { annotations?: Record<string, string> }; data: Record<string, string> }>(['-n', MANAGER_NS, 'get', 'secret', 'agent-injector-tls']);
  const before = await secret();
  t.ok(Number(before.metadata.annotations?.['telepresence.io/tls-not-after']) > Date.now() / 1000, 'the certificate the chart made is valid');
  // Its expiry, as helm will read it at the next upgrade, moved to the past: ten years cannot
  // pass in a test. kubectl now owns that field, so helm 4's server-side apply is told to take it
  // back (--force-conflicts); a certificate that really expired needs no such flag.
  await kube.kubectl(['-n', MANAGER_NS, 'annotate', 'secret', 'agent-injector-tls', 'telepresence.io/tls-not-after=1', '--overwrite']);
  const injectorPod = (await kube.kubectl(['-n', MANAGER_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=agent-injector', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  const upgraded = await runHelm(['upgrade', RELEASE, chartDir, '--namespace', MANAGER_NS, '--reuse-values', '--force-conflicts', '--wait', '--timeout', '3m']);
  t.equal(upgraded.exitCode, 0, `helm upgrade: ${upgraded.stderr}`);
  const after = await secret();
  t.not(after.data['tls.crt'], before.data['tls.crt'], 'a new serving certificate');
  t.not(after.data['ca.crt'], before.data['ca.crt'], 'from a new CA');
  t.ok(Number(after.metadata.annotations?.['telepresence.io/tls-not-after']) > Date.now() / 1000 + 30 * 86_400, 'valid for more than the 30 days that renewal keeps');
  const caBundle = (await kube.kubectl(['get', 'mutatingwebhookconfiguration', `agent-injector-webhook-${MANAGER_NS}`, '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim();
  t.equal(caBundle, after.data['ca.crt'], "the webhook trusts the new CA");
  // The same injector pod (the Deployment did not change): it reads the new files from its volume.
  await eventually(
    async () => {
      const logs = await kube.kubectl(['-n', MANAGER_NS, 'logs', injectorPod]);
      if (!/reloaded the TLS certificate/.test(logs)) throw new Error('not reloaded yet');
    },
    { timeoutMs: 240_000, intervalMs: 2000, what: 'the injector to reload its certificate' },
  );
  const stillThere = (await kube.kubectl(['-n', MANAGER_NS, 'get', 'pod', injectorPod, '-o', 'name', '--ignore-not-found'])).trim();
  t.equal(stillThere, `pod/${injectorPod}`, 'without being restarted');
  // A new pod of the intercepted workload is injected through the new certificate.
  await kube.kubectl(['-n', ns, 'delete', 'pods', '-l', 'app=shop', '--wait=false']);
  await eventually(
    async () => {
      const agents = await shopAgents();
      if (agents.length !== 1 || agents[0] === 'none') throw new Error(`shop pods: ${agents.join(', ')}`);
    },
    { timeoutMs: 120_000, intervalMs: 1000, what: 'a new shop pod with the agent' },
  );
  t.pass('a pod created after the renewal gets the agent');
});

t.test(`helm upgrade to v${NEXT}: the agents are brought along, the old client is told, the new one intercepts`, async (t) => {
  const upgraded = await runHelm(['upgrade', RELEASE, chartDir, '--namespace', MANAGER_NS, '--reuse-values', '--set', `tag=${NEXT}`, '--wait', '--timeout', '3m']);
  t.equal(upgraded.exitCode, 0, `helm upgrade: ${upgraded.stderr}`);
  await eventually(
    async () => {
      const agents = await shopAgents();
      if (agents.length !== 1 || agents[0] !== `tp-local/traffic-agent:${NEXT}`) throw new Error(`shop pods: ${agents.join(', ')}`);
    },
    { timeoutMs: 180_000, intervalMs: 1000, what: `the shop's agent at v${NEXT}` },
  );
  t.pass(`the shop's agent is v${NEXT}'s, without intercepting again`);
  const old = await eventually(
    async () => {
      const status = await cli.json<{ connection?: { error?: string } }>(['status']);
      if (!/traffic-manager was replaced/.test(status.connection?.error ?? '')) throw new Error(`status: ${JSON.stringify(status)}`);
      return status.connection?.error ?? '';
    },
    { timeoutMs: 120_000, intervalMs: 1000, what: `the v${VERSION} client to see the v${NEXT} manager` },
  );
  t.match(old, /this client is v.* but the traffic-manager is v.*kubectl telepresence install/, 'the old client says why it disconnected, and the fix');
  await cli.run(['quit']);

  const local = await startLocalEcho(t, { name: 'workstation-next' });
  await next!.ok(['connect']);
  await next!.ok(['intercept', 'shop', '--port', `${local.port}:http`, '--mount=false'], 300_000);
  t.strictSame(await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, local.host), Array(10).fill(local.host), `the v${NEXT} client intercepts`);
  await next!.ok(['leave', `shop-${ns}`]);
  await next!.ok(['quit']);
});

t.test('helm uninstall takes the agents out of the workloads first, and leaves nothing of the chart', async (t) => {
  const objects = await chartObjects();
  t.ok(objects.length >= 10, `the chart renders ${objects.length} objects`);
  t.not((await shopAgents())[0], 'none', 'the shop still has its agent');
  const uninstalled = await runHelm(['uninstall', RELEASE, '--namespace', MANAGER_NS, '--wait']);
  t.equal(uninstalled.exitCode, 0, `helm uninstall: ${uninstalled.stderr}`);
  await eventually(
    async () => {
      const agents = await shopAgents();
      if (agents.length !== 1 || agents[0] !== 'none') throw new Error(`shop pods: ${agents.join(', ')}`);
    },
    { timeoutMs: 60_000, intervalMs: 1000, what: 'the shop without its agent' },
  );
  t.pass('the shop runs without the agent');
  const entries = (await kube.kubectl(['get', 'configmaps', '-A', '--field-selector', 'metadata.name=telepresence-agents', '-o', 'jsonpath={.items[*].data}'])).trim();
  t.equal(entries, '', 'no agent configuration is left');
  const left: string[] = [];
  for (const o of objects) {
    const args = ['get', o.kind, o.name, '--ignore-not-found', '-o', 'name', ...(o.namespace !== undefined ? ['-n', o.namespace] : [])];
    if ((await kube.kubectl(args)).trim() !== '') left.push(`${o.kind}/${o.name}`);
  }
  t.strictSame(left, [], 'no object the chart made remains');
});
