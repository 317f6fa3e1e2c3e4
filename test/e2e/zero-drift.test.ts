/**
 * Workloads that never drift, on the real cluster: the traffic-manager brings agents in and takes
 * them out by evicting pods, so a Deployment kept in Git (by Argo CD or Flux) is the same object
 * before and after intercept, leave and uninstall; a PodDisruptionBudget that allows no eviction
 * makes it roll the workload out instead, and say so; a one-replica Deployment is rolled out, so
 * it keeps answering while its pod is replaced. Requests are sent without pause throughout, from a
 * pod, to show what callers see.
 *
 * The apps shut down as production apps should: a preStop pause keeps an old pod serving while
 * kube-proxy takes it out of the Service, so a failed request would be the restart's fault, not
 * the app's. One namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { answeredOnlyBy, hostsAnswering, keepAsking, type Answer } from '../src/fresh-gets.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { startLocalEcho } from '../src/local-echo.js';
import { clusterIpService, echoDeployment, namespace, shopAndClient } from '../src/manifests.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-drift-${randomBytes(3).toString('hex')}`;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

interface PodTemplateSpec {
  terminationGracePeriodSeconds?: number;
  containers: Array<Record<string, unknown>>;
}
interface DeploymentObject {
  metadata: { name: string };
  spec: { template: { spec: PodTemplateSpec } };
}

/** The Deployment with a preStop pause of 2 s, as an app behind a Service should have. */
function graceful<T extends object>(d: T): T {
  const copy = JSON.parse(JSON.stringify(d)) as DeploymentObject;
  const spec = copy.spec.template.spec;
  spec.terminationGracePeriodSeconds = 10;
  for (const c of spec.containers) c['lifecycle'] = { preStop: { exec: { command: ['node', '-e', 'setTimeout(() => {}, 2000)'] } } };
  return copy as T;
}

const [shop, shopService, client] = shopAndClient(ns) as [object, object, object];
const budget = {
  apiVersion: 'policy/v1',
  kind: 'PodDisruptionBudget',
  metadata: { name: 'guarded', namespace: ns },
  spec: { maxUnavailable: 0, selector: { matchLabels: { app: 'guarded' } } },
};

/** What GitOps compares: the workload's generation, spec and annotations. */
async function gitView(name: string): Promise<unknown> {
  const d = await kube.json<{ metadata: { generation?: number; annotations?: Record<string, string> }; spec: unknown }>(['-n', ns, 'get', 'deployment', name]);
  return { generation: d.metadata.generation, annotations: d.metadata.annotations ?? {}, spec: d.spec };
}

async function livePods(app: string): Promise<Pod[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`]);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined);
}

const hasAgent = (p: Pod): boolean => (p.spec?.containers ?? []).some((c) => c.name === 'traffic-agent');
const isReady = (p: Pod): boolean => p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Waits until the app has `replicas` ready pods, all with the agent or all without. */
function settled(app: string, replicas: number, agent: boolean): Promise<Pod[]> {
  return eventually(
    async () => {
      const pods = await livePods(app);
      if (pods.length !== replicas || !pods.every((p) => isReady(p) && hasAgent(p) === agent)) {
        throw new Error(`pods: ${pods.map((p) => `${p.metadata.name} ready=${isReady(p)} agent=${hasAgent(p)}`).join(', ')}`);
      }
      return pods;
    },
    { timeoutMs: 120_000, intervalMs: 500, what: `${replicas} ready pod(s) of ${app} ${agent ? 'with' : 'without'} the agent` },
  );
}

/** The failed requests, and a line that says how many were sent over how long. */
function summary(answers: readonly Answer[]): { failed: Answer[]; line: string } {
  const failed = answers.filter((a) => a.answer.startsWith('ERROR'));
  const span = answers.length === 0 ? 0 : (answers.at(-1)?.atMs ?? 0) / 1000;
  return { failed, line: `${answers.length} requests over ${span.toFixed(1)} s, ${failed.length} failed` };
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await installManager(cli, (args, o) => kube.kubectl(args, o));
  await kube.apply([
    namespace(ns),
    graceful(shop),
    shopService,
    graceful(echoDeployment(ns, 'pair', 2)),
    clusterIpService(ns, 'pair', 80),
    graceful(echoDeployment(ns, 'guarded', 2)),
    clusterIpService(ns, 'guarded', 80),
    budget,
    client,
  ]);
  for (const app of ['shop', 'pair', 'guarded']) {
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=120s'], { timeoutMs: 130_000 });
  }
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

t.test('two replicas: intercept, leave and uninstall evict pods one by one and leave the Deployment as it was; no request fails', async (t) => {
  const local = await startLocalEcho(t);
  const before = await gitView('pair');
  const asking = keepAsking(kube, ns, 'client', `http://pair.${ns}/`);

  const intercepted = await cli.run(['intercept', 'pair', '--port', `${local.port}:http`], 300_000);
  t.equal(intercepted.exitCode, 0, `intercept: ${intercepted.stderr}`);
  t.match(intercepted.stderr, /evicted pod pair-\S+ of deployment\/pair \(1 of 2\)/, 'it says which pod it evicted');
  t.match(intercepted.stderr, /evicted pod pair-\S+ of deployment\/pair \(2 of 2\)/, 'and the next one after the first was replaced');
  t.notMatch(intercepted.stderr, /rollout/, 'no rollout');
  await settled('pair', 2, true);
  await answeredOnlyBy(kube, ns, 'client', `http://pair.${ns}/`, local.host);
  t.strictSame(await gitView('pair'), before, 'after intercept: the same generation, spec and annotations');

  await cli.ok(['leave', `pair-${ns}`]);
  t.strictSame(await gitView('pair'), before, 'after leave: the same');

  await cli.ok(['uninstall', '--agent', 'pair']);
  const names = (await settled('pair', 2, false)).map((p) => p.metadata.name);
  await eventually(
    async () => {
      const got = await hostsAnswering(kube, ns, 'client', `http://pair.${ns}/`, 10);
      if (!got.every((h) => names.includes(h))) throw new Error(`answered by ${got.join(', ')}`);
    },
    { timeoutMs: 60_000, intervalMs: 200, what: `the app's new pods (${names.join(', ')}) answering again` },
  );
  t.strictSame(await gitView('pair'), before, 'after uninstall of the agent: the same');

  const { failed, line } = summary(await asking.stop());
  t.comment(`pair: ${line}`);
  t.strictSame(failed, [], `no request failed (${line})`);
});

t.test('a PodDisruptionBudget that allows no eviction: asked for a while, then a rollout, said both times', async (t) => {
  const local = await startLocalEcho(t);
  const intercepted = await cli.run(['intercept', 'guarded', '--port', `${local.port}:http`], 300_000);
  t.equal(intercepted.exitCode, 0, `intercept: ${intercepted.stderr}`);
  t.match(intercepted.stderr, /evicting pod guarded-\S+ is refused \(.*disruption budget.*\); asking again for up to 30 s/i, 'the refusal is reported as it happens');
  t.match(
    intercepted.stderr,
    /a PodDisruptionBudget kept pod guarded-\S+ from being evicted for 30 s .*restarting deployment\/guarded by a rollout instead, which sets the annotation telepresence\.io\/restarted-at on its pod template/,
    'and the fallback, with what it changes',
  );
  const after = await kube.json<{ spec: { template: { metadata: { annotations?: Record<string, string> } } } }>(['-n', ns, 'get', 'deployment', 'guarded']);
  t.ok(after.spec.template.metadata.annotations?.['telepresence.io/restarted-at'], 'the pod template carries the rollout annotation');
  await settled('guarded', 2, true);
  await answeredOnlyBy(kube, ns, 'client', `http://guarded.${ns}/`, local.host);
  await cli.ok(['leave', `guarded-${ns}`]);
});

t.test('a workload annotated for pre-injection has the agent from deploy time: its first intercept changes no pod, and it keeps the agent', async (t) => {
  const early = echoDeployment(ns, 'early', 2) as { spec: { template: { metadata: { annotations?: Record<string, string> } } } };
  early.spec.template.metadata.annotations = { 'telepresence.io/inject-traffic-agent': 'enabled' };
  await kube.apply([early, clusterIpService(ns, 'early', 80)]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/early', '--timeout=120s'], { timeoutMs: 130_000 });
  const deployed = await settled('early', 2, true);
  t.pass('both pods have the agent as they are deployed');
  const cm = await kube.json<{ data?: Record<string, string> }>(['-n', ns, 'get', 'configmap', 'telepresence-agents']);
  t.ok(cm.data?.['early'], 'the injector wrote its entry');
  const uids = deployed.map((p) => p.metadata.uid).sort();

  const local = await startLocalEcho(t);
  const intercepted = await cli.run(['intercept', 'early', '--port', `${local.port}:http`], 300_000);
  t.equal(intercepted.exitCode, 0, `intercept: ${intercepted.stderr}`);
  t.notMatch(intercepted.stderr, /replacing its pods|evicted|rollout/, 'nothing is restarted');
  await answeredOnlyBy(kube, ns, 'client', `http://early.${ns}/`, local.host);
  t.strictSame((await livePods('early')).map((p) => p.metadata.uid).sort(), uids, 'the very same pods serve the intercept');
  await cli.ok(['leave', `early-${ns}`]);
  t.strictSame((await settled('early', 2, true)).map((p) => p.metadata.uid).sort(), uids, 'and keep their agent after leave');
});

t.test('one replica: rolled out, so it answers throughout; the rollout is said', async (t) => {
  const local = await startLocalEcho(t);
  const asking = keepAsking(kube, ns, 'client', `http://shop.${ns}/`);
  const intercepted = await cli.run(['intercept', 'shop', '--port', `${local.port}:http`], 300_000);
  t.equal(intercepted.exitCode, 0, `intercept: ${intercepted.stderr}`);
  t.match(intercepted.stderr, /restarting deployment\/shop by a rollout, which changes its pod template: it has one replica/, 'it says why it rolls out');
  await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, local.host);
  await cli.ok(['leave', `shop-${ns}`]);
  await cli.ok(['uninstall', '--agent', 'shop']);
  const [pod] = await settled('shop', 1, false);
  await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, pod?.metadata.name ?? '');
  const { failed, line } = summary(await asking.stop());
  t.comment(`shop: ${line}`);
  t.strictSame(failed, [], `no request failed while the agent came and went (${line})`);
});
