/**
 * An upgrade on the real cluster: this source is built a second time as the next minor release
 * (its own CLI, its three images on the node), and that release's `install` goes over this one
 * while a workload is intercepted. The manager and injector are replaced, every agent is brought
 * to the new agent image by eviction without anyone intercepting again (the Deployment stays as
 * it was), the old client is disconnected with the version-mismatch error and its fix, and the new
 * client intercepts the same workload. At the end this release is installed again over it.
 *
 * One namespace of its own, deleted at the end; the shared manager is left at this release.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildRelease, findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { answeredOnlyBy } from '../src/fresh-gets.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { startLocalEcho } from '../src/local-echo.js';
import { clusterIpService, echoDeployment, namespace, shopAndClient } from '../src/manifests.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(30 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-upgrade-${randomBytes(3).toString('hex')}`;
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const [major, minor] = VERSION.split('.').map(Number) as [number, number];
const NEXT = `${major}.${minor + 1}.0`;
const MANAGER_NS = 'tp-system';

const current = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
let next: ReturnType<typeof createTelepresenceCli> | undefined;
let nextRoot = '';
const [, , client] = shopAndClient(ns) as [object, object, object];

interface ContainerStatusView {
  name: string;
  image: string;
}

async function agentImages(): Promise<string[]> {
  const list = await kube.json<List<Pod & { status?: { containerStatuses?: ContainerStatusView[] } }>>(['-n', ns, 'get', 'pods', '-l', 'app=pair']);
  return list.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) => (p.spec?.containers ?? []).find((c) => c.name === 'traffic-agent') as { image?: string } | undefined)
    .map((c) => c?.image ?? 'none');
}

async function gitView(): Promise<unknown> {
  const d = await kube.json<{ metadata: { generation?: number; annotations?: Record<string, string> }; spec: unknown }>(['-n', ns, 'get', 'deployment', 'pair']);
  return { generation: d.metadata.generation, annotations: d.metadata.annotations ?? {}, spec: d.spec };
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  nextRoot = await buildRelease(repoRoot, cluster.kubeconfig, NEXT);
  next = createTelepresenceCli({ repoRoot, binDir: join(nextRoot, 'dist', 'bin'), kubeconfig: cluster.kubeconfig, namespace: ns });
  await installManager(current, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await kube.apply([namespace(ns), echoDeployment(ns, 'pair', 2), clusterIpService(ns, 'pair', 80), client]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/pair', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
});

t.teardown(async () => {
  await next?.dispose();
  await current.run(['quit']);
  // This release back, over the next one: its agents are brought back along too.
  await installManager(current, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await current.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  if (nextRoot !== '') rmSync(nextRoot, { recursive: true, force: true });
});

t.test(`install of v${NEXT} over v${VERSION} with an intercept in place`, async (t) => {
  const before = await startLocalEcho(t, { name: 'workstation-old' });
  await current.ok(['connect']);
  await current.ok(['intercept', 'pair', '--port', `${before.port}:http`], 300_000);
  await answeredOnlyBy(kube, ns, 'client', `http://pair.${ns}/`, before.host);
  t.strictSame(await agentImages(), [`tp-local/traffic-agent:${VERSION}`, `tp-local/traffic-agent:${VERSION}`], `the agents are v${VERSION}'s`);
  const drift = await gitView();

  const upgraded = await next!.run(['install'], 300_000);
  t.equal(upgraded.exitCode, 0, `v${NEXT} install: ${upgraded.stderr}`);
  t.match(upgraded.stdout, new RegExp(`tp-local/traffic-manager:${NEXT.replaceAll('.', '\\.')}`), 'it installs the new manager');

  await eventually(
    async () => {
      const images = await agentImages();
      if (images.length !== 2 || !images.every((i) => i === `tp-local/traffic-agent:${NEXT}`)) throw new Error(`agents: ${images.join(', ')}`);
    },
    { timeoutMs: 240_000, intervalMs: 1000, what: `both pods of pair with the v${NEXT} agent` },
  );
  t.pass(`every agent was brought to v${NEXT} without intercepting again`);
  t.strictSame(await gitView(), drift, 'the Deployment is as it was: its pods were evicted, not rolled out');

  const old = await eventually(
    async () => {
      const status = await current.json<{ connection?: { connected?: boolean; error?: string; lostIntercepts?: Array<{ name: string; reason: string }> } }>(['status']);
      if (!/traffic-manager was replaced/.test(status.connection?.error ?? '')) throw new Error(`status: ${JSON.stringify(status)}`);
      return status.connection ?? {};
    },
    { timeoutMs: 120_000, intervalMs: 1000, what: `the v${VERSION} client to see the v${NEXT} manager` },
  );
  t.match(old.error, new RegExp(`this client is v${VERSION.replaceAll('.', '\\.')} but the traffic-manager is v${NEXT.replaceAll('.', '\\.')}.*kubectl telepresence install`), 'the old client says why it disconnected, and the fix');
  t.match(old.lostIntercepts, [{ name: `pair-${ns}`, reason: /traffic-manager is v/ }], 'and that its intercept ended');
  t.equal(old.connected, false, 'it is disconnected');
  const again = await current.run(['connect']);
  t.not(again.exitCode, 0, 'connecting again with the old client fails');
  t.match(again.stderr, /this client is v.* but the traffic-manager is v/, 'with the version mismatch');

  const after = await startLocalEcho(t, { name: 'workstation-new' });
  await next!.ok(['connect']);
  await next!.ok(['intercept', 'pair', '--port', `${after.port}:http`], 300_000);
  t.strictSame(await answeredOnlyBy(kube, ns, 'client', `http://pair.${ns}/`, after.host), Array(10).fill(after.host), `the v${NEXT} client intercepts it again`);
  await next!.ok(['leave', `pair-${ns}`]);
});
