import t from 'tap';
import type { V1Deployment } from '@kubernetes/client-node';
import { buildAgentConfig } from '../../src/manager/agent-config-builder.js';
import type { KubePod, KubeWorkload } from '../../src/manager/kube.js';
import { AgentConfigWatcher, EVICTION_WAIT_MS, STRAY_AGE_MS, STRAY_EVICTIONS, desiredReplicas, restartPlan } from '../../src/manager/rollout.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { serializeAgentConfig, type AgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod, type PodOptions } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const opts = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' } as const;
const labels = { app: 'web' };

/** The workload `web`, with `replicas` (left out when undefined) and workload annotations. */
function web(kind: WorkloadKind, replicas: number | undefined, annotations?: Record<string, string>, strategy?: NonNullable<V1Deployment['spec']>['strategy']): KubeWorkload {
  const w = workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }], { kind });
  const object = {
    ...w.object,
    metadata: { ...w.object.metadata, ...(annotations === undefined ? {} : { annotations }) },
    spec: { ...w.object.spec!, ...(replicas === undefined ? {} : { replicas }), ...(strategy === undefined ? {} : { strategy }) },
  };
  return { ...w, object } as KubeWorkload;
}

function config(w: KubeWorkload, image: string = opts.agentImage): AgentConfig {
  return buildAgentConfig(w, [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], labels)], { ...opts, agentImage: image });
}

const refOf = (w: KubeWorkload) => ({ kind: w.kind, name: w.name, namespace: w.namespace });
const podOf = (name: string, o: PodOptions = {}): KubePod => pod(name, { labels, ...o });

/** Lets every pending callback run until `done()` holds (the watcher works through promises). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((resolve) => setImmediate(resolve));
  if (!done()) throw new Error('the condition never held');
}

function setup(w: KubeWorkload, pods: KubePod[]) {
  const kube = new FakeKube();
  const clock = new FakeClock();
  kube.workloads.push(w);
  kube.setPods(refOf(w), pods);
  const lines: string[] = [];
  const notices: string[] = [];
  const watcher = new AgentConfigWatcher({ kube, clock, log: createLogger('traffic-manager', 'debug', (l) => lines.push(l)) });
  watcher.onNotice((_ref, line) => notices.push(line));
  watcher.start();
  /** Evictions make a replacement with `o` (the webhook's doing), unless told otherwise. */
  const replaceWith = (o: PodOptions): void => {
    let n = 0;
    kube.onEvict = () => {
      const fresh = podOf(`web-new-${n++}`, o);
      queueMicrotask(() => {
        kube.setPods(refOf(w), [...(kube.pods.get(`default/${w.kind}/web`) ?? []), fresh]);
        kube.emitPod('ADDED', fresh);
      });
      return { outcome: 'evicted' };
    };
  };
  return { kube, clock, watcher, lines, notices, replaceWith };
}

t.test('pods are evicted one after another, each once its replacement is ready; the workload is never changed', async (t) => {
  const w = web('Deployment', 3);
  const hash = agentConfigHash(config(w));
  const { kube, watcher, notices, replaceWith } = setup(w, [podOf('web-0'), podOf('web-1'), podOf('web-2')]);
  replaceWith({ agent: true, hash });
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'evict default/web-0', 'evict default/web-1', 'evict default/web-2']);
  t.match(notices, [/evicted pod web-0 of deployment\/web \(1 of 3\)/, /web-1.*\(2 of 3\)/, /web-2.*\(3 of 3\)/]);
});

t.test('the next pod waits while a replacement is not ready', async (t) => {
  const w = web('Deployment', 2);
  const hash = agentConfigHash(config(w));
  const { kube, clock, watcher, replaceWith } = setup(w, [podOf('web-0'), podOf('web-1')]);
  replaceWith({ agent: true, hash, phase: 'Pending', ready: false });
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await until(() => kube.calls.length === 2 && kube.podWatches === 1 && clock.pending === 1);
  clock.advance(5000);
  await until(() => clock.pending === 1);
  t.strictSame(kube.calls, ['apply default/web', 'evict default/web-0'], 'web-1 is kept while web-new-0 is not ready');
  const ready = podOf('web-new-0', { agent: true, hash });
  kube.setPods(refOf(w), [podOf('web-1'), ready]);
  kube.emitPod('MODIFIED', ready);
  await until(() => kube.calls.length === 3);
  t.equal(kube.calls[2], 'evict default/web-1', 'and goes once it is');
  watcher.stop();
  await watcher.idle();
  t.equal(kube.podWatches, 0, 'the pod watch is closed');
});

t.test('pods that are not ready go first, without waiting', async (t) => {
  const w = web('Deployment', 3);
  const hash = agentConfigHash(config(w));
  const { kube, watcher, replaceWith } = setup(w, [podOf('web-0'), podOf('web-1', { ready: false }), podOf('web-2', { phase: 'Pending', ready: false })]);
  replaceWith({ agent: true, hash });
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await watcher.idle();
  t.strictSame(kube.calls.slice(1), ['evict default/web-1', 'evict default/web-2', 'evict default/web-0']);
});

t.test('which pods are replaced for an added or changed entry', async (t) => {
  const w = web('Deployment', 2);
  const hash = agentConfigHash(config(w));
  const cases: ReadonlyArray<{ name: string; pods: PodOptions[]; evicted: string[] }> = [
    { name: 'no pods at all: nothing (the pods of a scale-up pass the webhook)', pods: [], evicted: [] },
    { name: 'pods without the agent', pods: [{}, {}], evicted: ['web-0', 'web-1'] },
    { name: 'a pod with an older hash', pods: [{ agent: true, hash: 'aaaaaaaaaaaaaaaa' }, { agent: true, hash }], evicted: ['web-0'] },
    { name: 'every pod with the hash', pods: [{ agent: true, hash }, { agent: true, hash }], evicted: [] },
    { name: 'a terminating or failed pod is not evicted', pods: [{ deleting: true }, { phase: 'Failed' }, { agent: true, hash }], evicted: [] },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, watcher, replaceWith } = setup(w, c.pods.map((p, i) => podOf(`web-${i}`, p)));
      replaceWith({ agent: true, hash });
      await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
      await watcher.idle();
      t.strictSame(kube.calls, ['apply default/web', ...c.evicted.map((p) => `evict default/${p}`)]);
    });
  }
});

t.test('a removed entry evicts the pods that still carry an agent', async (t) => {
  const w = web('StatefulSet', 2);
  const hash = agentConfigHash(config(w));
  const { kube, watcher, replaceWith } = setup(w, [podOf('web-0', { agent: true, hash }), podOf('web-1', { agent: true, hash })]);
  replaceWith({});
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await watcher.idle();
  kube.calls.length = 0;
  kube.setPods(refOf(w), [podOf('web-0', { agent: true, hash: 'x' }), podOf('web-1'), podOf('web-2', { agent: true, deleting: true })]);
  await kube.removeAgentConfig('default', 'web');
  await watcher.idle();
  t.strictSame(kube.calls, ['remove default/web', 'evict default/web-0']);
});

t.test('a change that comes while the pods are being looked at is not lost', async (t) => {
  const w = web('Deployment', 2);
  const hash = agentConfigHash(config(w));
  const { kube, watcher, replaceWith } = setup(w, [podOf('web-0', { agent: true, hash }), podOf('web-1', { agent: true, hash })]);
  replaceWith({});
  // Written and removed at once: the replacement for the entry is still listing pods (nothing to
  // do for it) when the removal redirects it.
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await kube.removeAgentConfig('default', 'web');
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'remove default/web', 'evict default/web-0', 'evict default/web-1'], 'the removal evicts the pods with the agent');
});

t.test('a new pod that came without the agent is evicted again, once it is a few seconds old, and at most three times', async (t) => {
  const w = web('Deployment', 2);
  const { kube, clock, watcher, lines } = setup(w, [podOf('web-0'), podOf('web-1')]);
  // The webhook keeps failing open: every replacement comes without the agent.
  let n = 0;
  kube.onEvict = () => {
    const fresh = podOf(`web-new-${n++}`, { created: new Date(clock.now()) });
    queueMicrotask(() => {
      kube.setPods(refOf(w), [...(kube.pods.get('default/Deployment/web') ?? []), fresh]);
      kube.emitPod('ADDED', fresh);
    });
    return { outcome: 'evicted' };
  };
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  let done = false;
  void watcher.idle().then(() => (done = true));
  for (let i = 0; i < 20 && !done; i++) {
    await until(() => done || clock.pending > 0);
    if (!done) clock.advance(STRAY_AGE_MS);
  }
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'evict default/web-0', 'evict default/web-1', 'evict default/web-new-0', 'evict default/web-new-1', 'evict default/web-new-2'], 'the pods that were there, then three new ones without the agent');
  t.equal(STRAY_EVICTIONS, 3);
  t.match(lines.join(''), /a new pod came without the agent; evicting it again.*web-new-0/);
  t.match(lines.join(''), /new pods came without the agent; not evicting them again/, 'then it gives up, and says so');
});

t.test('a budget that keeps refusing: asked again each second, then a rollout, said both times', async (t) => {
  const w = web('Deployment', 2);
  const { kube, clock, watcher, notices } = setup(w, [podOf('web-0'), podOf('web-1')]);
  const reason = 'Cannot evict pod as it would violate the pod\'s disruption budget.';
  kube.onEvict = () => ({ outcome: 'blocked', reason });
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await until(() => notices.length === 1 && clock.pending === 1);
  t.match(notices[0], /evicting pod web-0 is refused \(Cannot evict pod.*\); asking again for up to 30 s/);
  for (let waited = 0; waited < EVICTION_WAIT_MS; waited += 1000) {
    const asked = kube.calls.length;
    clock.advance(1000);
    await until(() => kube.calls.length > asked && (clock.pending === 1 || kube.calls.at(-1)?.startsWith('restart') === true));
  }
  await watcher.idle();
  t.equal(kube.calls.filter((c) => c === 'evict default/web-0').length, EVICTION_WAIT_MS / 1000 + 1, 'asked once a second');
  t.equal(kube.calls.at(-1), 'restart default/Deployment/web', 'then rolled out');
  t.match(notices.at(-1), /PodDisruptionBudget kept pod web-0 from being evicted for 30 s .*restarting deployment\/web by a rollout instead, which sets the annotation telepresence.io\/restarted-at/);
});

t.test('restartPlan: eviction, but a rollout for one replica that may surge', async (t) => {
  const cases: ReadonlyArray<{ name: string; w: KubeWorkload; method: string }> = [
    { name: 'Deployment of 3', w: web('Deployment', 3), method: 'eviction' },
    { name: 'Deployment of 1', w: web('Deployment', 1), method: 'rollout' },
    { name: 'Deployment, replicas left out', w: web('Deployment', undefined), method: 'rollout' },
    { name: 'Deployment of 1, maxSurge 0', w: web('Deployment', 1, undefined, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }), method: 'eviction' },
    { name: 'Deployment of 1, maxSurge 0%', w: web('Deployment', 1, undefined, { rollingUpdate: { maxSurge: '0%' } }), method: 'eviction' },
    { name: 'Deployment of 1, Recreate', w: web('Deployment', 1, undefined, { type: 'Recreate' }), method: 'eviction' },
    { name: 'Deployment of 1 annotated eviction', w: web('Deployment', 1, { 'telepresence.io/restart-by': 'eviction' }), method: 'eviction' },
    { name: 'Deployment of 3 annotated rollout', w: web('Deployment', 3, { 'telepresence.io/restart-by': 'rollout' }), method: 'rollout' },
    { name: 'StatefulSet of 1 (its own update deletes the pod first too)', w: web('StatefulSet', 1), method: 'eviction' },
    { name: 'ReplicaSet of 1 (it never surges)', w: web('ReplicaSet', 1), method: 'eviction' },
  ];
  for (const c of cases) t.equal(restartPlan(c.w).method, c.method, c.name);
  t.match(restartPlan(web('Deployment', 1)).why, /one replica.*annotate the Deployment telepresence.io\/restart-by=eviction/);
});

t.test('one replica: a rollout, said to the prepare, and not started again while under way', async (t) => {
  const w = web('Deployment', 1);
  const hash = agentConfigHash(config(w));
  const { kube, watcher, notices } = setup(w, [podOf('web-0')]);
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'restart default/Deployment/web']);
  t.match(notices, [/restarting deployment\/web by a rollout, which changes its pod template: it has one replica/]);
  // The manager restarts while the new pod is still starting: the replayed entry starts nothing.
  kube.setPods(refOf(w), [podOf('web-0'), podOf('web-1', { agent: true, hash, phase: 'Pending', ready: false })]);
  const again = new AgentConfigWatcher({ kube, clock: new FakeClock(), log: createLogger('m', 'error', () => undefined) });
  again.start();
  await again.idle();
  t.equal(kube.calls.length, 2);
});

t.test('the rollout stamps the clock’s time', async (t) => {
  const kube = new FakeKube();
  const w = web('Deployment', 1);
  kube.workloads.push(w);
  kube.setPods(refOf(w), [podOf('web-0')]);
  const clock = new FakeClock(Date.UTC(2025, 5, 1, 12, 0, 0));
  const stamps: string[] = [];
  kube.onRestart = (_ref, at) => stamps.push(at);
  const watcher = new AgentConfigWatcher({ kube, clock, log: createLogger('m', 'error', () => undefined) });
  watcher.start();
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config(w)));
  await watcher.idle();
  t.strictSame(stamps, ['2025-06-01T12:00:00.000Z']);
});

t.test('unchanged entries are left alone; a changed one is compared again', async (t) => {
  const w = web('Deployment', 2);
  const first = config(w);
  const { kube, watcher, replaceWith } = setup(w, [podOf('web-0', { agent: true, hash: agentConfigHash(first) }), podOf('web-1', { agent: true, hash: agentConfigHash(first) })]);
  const second = config(w, 'tp-local/traffic-agent:0.2.0');
  replaceWith({ agent: true, hash: agentConfigHash(second) });
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(first));
  // Another entry of the namespace changes: web's is the same text, so nothing is listed or evicted.
  await kube.applyAgentConfig('default', 'other', 'not even JSON');
  await watcher.idle();
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(second));
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'apply default/other', 'apply default/web', 'evict default/web-0', 'evict default/web-1']);
});

t.test('a bad entry is logged and skipped', async (t) => {
  const { kube, watcher, lines } = setup(web('Deployment', 2), []);
  await kube.applyAgentConfig('default', 'web', '{"version": 99}');
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web']);
  t.match(lines.join(''), /ignoring a bad agent configuration.*version 99/);
});

t.test('desiredReplicas: spec.replicas, 1 when left out', async (t) => {
  t.equal(desiredReplicas(web('Deployment', 0)), 0);
  t.equal(desiredReplicas(web('Deployment', 3)), 3);
  t.equal(desiredReplicas(web('Deployment', undefined)), 1);
});
