import t from 'tap';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { ANNOTATIONS, LABELS, REMOVE_AGENTS_WAIT_SECONDS } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { buildAgentConfig } from '../../src/manager/agent-config-builder.js';
import type { KubePod, KubeWorkload, WorkloadRefKey } from '../../src/manager/kube.js';
import { REMOVE_AGENTS_PROGRESS_MS, parseManagerMode, removeAgents } from '../../src/manager/remove-agents.js';
import { AgentConfigWatcher } from '../../src/manager/rollout.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod, type PodOptions } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const WAIT_MS = REMOVE_AGENTS_WAIT_SECONDS * 1000;
const injected = { [LABELS.agentInjected]: 'true' };

const deployment = (namespace: string, name: string): WorkloadRefKey => ({ kind: 'Deployment', namespace, name });
/** A pod of workload `name` with the agent and its label. */
const agentPod = (namespace: string, name: string, o: PodOptions = {}): KubePod => pod(name, { agent: true, ...o, labels: { ...injected, ...o.labels } }, namespace);

interface Line {
  level: string;
  msg: string;
  [field: string]: unknown;
}

function setup() {
  const kube = new FakeKube();
  const clock = new FakeClock();
  const lines: Line[] = [];
  const log = createLogger('traffic-manager', 'debug', (l) => lines.push(JSON.parse(l) as Line));
  return { kube, clock, lines, log };
}

/**
 * The traffic-manager's part, in short: `ms` after a workload's entry goes, its pods go (the
 * pod of a Deployment named as the entry). The real watcher is in the last test.
 */
function podsLeaveAfter(kube: FakeKube, clock: FakeClock, ms: number): void {
  const seen = new Map<string, Readonly<Record<string, string>>>();
  kube.watchAgentConfigMaps((e) => {
    const before = seen.get(e.namespace) ?? {};
    seen.set(e.namespace, e.data);
    for (const name of Object.keys(before)) {
      if (!(name in e.data)) clock.setTimer(ms, () => kube.setPods(deployment(e.namespace, name), []));
    }
  });
}

/** Runs `p` to its end, moving the clock one second whenever every pending callback has run. */
async function run<T>(clock: FakeClock, p: Promise<T>): Promise<T> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 10_000 && !settled; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (!settled) clock.advance(1000);
  }
  return p;
}

t.test('the argument picks the mode', async (t) => {
  t.equal(parseManagerMode([]), 'serve', 'none: serve');
  t.equal(parseManagerMode(['serve']), 'serve');
  t.equal(parseManagerMode(['remove-agents']), 'remove-agents');
  t.throws(() => parseManagerMode(['remove-agent']), { category: 'config', code: 'bad-arguments', message: /unknown mode "remove-agent"/, hint: /remove-agents/ });
});

t.test('every entry of every namespace is removed and logged; the wait ends when the pods with an agent are gone', async (t) => {
  const { kube, clock, lines, log } = setup();
  kube.maps.set('shop', { web: '{}', api: '{}' });
  kube.maps.set('blog', { front: '{}' });
  kube.maps.set('empty', {});
  kube.setPods(deployment('shop', 'web'), [agentPod('shop', 'web-0'), agentPod('shop', 'web-1')]);
  kube.setPods(deployment('shop', 'api'), [agentPod('shop', 'api-0')]);
  kube.setPods(deployment('blog', 'front'), [agentPod('blog', 'front-0')]);
  kube.setPods(deployment('blog', 'plain'), [pod('plain-0', {}, 'blog')]);
  podsLeaveAfter(kube, clock, 3000);
  const start = clock.now();
  const result = await run(clock, removeAgents({ kube, clock, log }));
  t.strictSame(result, { removed: ['shop/web', 'shop/api', 'blog/front'], failed: [], preInjected: [], left: [] });
  t.strictSame(kube.calls, ['remove shop/web', 'remove shop/api', 'remove blog/front']);
  t.strictSame([...kube.maps.values()], [{}, {}, {}], 'no entry is left');
  t.ok(clock.now() - start >= 3000 && clock.now() - start <= 4000, `returned once the pods had gone (${clock.now() - start} ms), not at the bound`);
  t.equal(clock.pending, 0, 'no timer left behind');
  t.match(
    lines.filter((l) => l.msg === 'removed an agent configuration'),
    [{ entry: 'shop/web' }, { entry: 'shop/api' }, { entry: 'blog/front' }],
    'each removal is logged',
  );
  t.match(lines, [{}, {}, {}, { level: 'info', msg: /removed 3 agent configurations; waiting up to 120 s/ }], 'then the wait is announced');
  t.match(lines.find((l) => /^waiting for/.test(l.msg)), { msg: 'waiting for 4 pods with an agent to go', pods: ['blog/front-0', 'shop/api-0', 'shop/web-0', 'shop/web-1'] });
  t.match(lines.at(-1), { level: 'info', msg: 'no pod has an agent any more' });
});

t.test('pods that are terminating or finished are not waited for', async (t) => {
  const cases: ReadonlyArray<{ name: string; pod: PodOptions; waits: boolean }> = [
    { name: 'running', pod: {}, waits: true },
    { name: 'pending', pod: { phase: 'Pending', ready: false }, waits: true },
    { name: 'not ready', pod: { ready: false }, waits: true },
    { name: 'terminating', pod: { deleting: true }, waits: false },
    { name: 'succeeded', pod: { phase: 'Succeeded' }, waits: false },
    { name: 'failed', pod: { phase: 'Failed' }, waits: false },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, clock, log } = setup();
      kube.setPods(deployment('shop', 'web'), [agentPod('shop', 'web-0', c.pod)]);
      const start = clock.now();
      const result = await run(clock, removeAgents({ kube, clock, log }));
      t.strictSame(result.left, c.waits ? ['shop/web-0'] : []);
      t.equal(clock.now() - start, c.waits ? WAIT_MS : 0, c.waits ? 'waited for it to the bound' : 'did not wait');
    });
  }
});

t.test('the wait is bounded: the pods left are named, the run still succeeds', async (t) => {
  const { kube, clock, lines, log } = setup();
  kube.maps.set('shop', { web: '{}' });
  // Nothing evicts: the traffic-manager is not running, or a budget holds the pods.
  kube.setPods(deployment('shop', 'web'), [agentPod('shop', 'web-0'), agentPod('shop', 'web-1')]);
  const start = clock.now();
  const result = await run(clock, removeAgents({ kube, clock, log }));
  t.equal(clock.now() - start, WAIT_MS, `waited ${REMOVE_AGENTS_WAIT_SECONDS} s`);
  t.strictSame(result, { removed: ['shop/web'], failed: [], preInjected: [], left: ['shop/web-0', 'shop/web-1'] });
  t.equal(clock.pending, 0, 'no timer left behind');
  t.match(lines.at(-1), { level: 'warn', msg: /pods still have an agent after 120 s; .*they lose the agent at their next restart/, pods: ['shop/web-0', 'shop/web-1'] });
  const progress = lines.filter((l) => /^waiting for/.test(l.msg));
  t.equal(progress.length, WAIT_MS / REMOVE_AGENTS_PROGRESS_MS, `progress every ${REMOVE_AGENTS_PROGRESS_MS / 1000} s`);
  t.match(progress.at(-1), { msg: 'waiting for 2 pods with an agent to go', secondsLeft: REMOVE_AGENTS_PROGRESS_MS / 1000 });
});

t.test('progress says what is left as pods go, and names ten pods at most', async (t) => {
  const { kube, clock, lines, log } = setup();
  const ref = deployment('shop', 'web');
  kube.setPods(ref, Array.from({ length: 12 }, (_, i) => agentPod('shop', `web-${String(i).padStart(2, '0')}`)));
  clock.setTimer(6000, () => kube.setPods(ref, (kube.pods.get('shop/Deployment/web') ?? []).slice(10)));
  clock.setTimer(12_000, () => kube.setPods(ref, []));
  const result = await run(clock, removeAgents({ kube, clock, log }));
  t.strictSame(result.left, []);
  t.match(
    lines.filter((l) => /^waiting for/.test(l.msg)),
    [
      { msg: 'waiting for 12 pods with an agent to go', pods: ['shop/web-00', 'shop/web-01', 'shop/web-02', 'shop/web-03', 'shop/web-04', 'shop/web-05', 'shop/web-06', 'shop/web-07', 'shop/web-08', 'shop/web-09'], more: 2 },
      { msg: 'waiting for 12 pods with an agent to go' },
      { msg: 'waiting for 2 pods with an agent to go', pods: ['shop/web-10', 'shop/web-11'], more: undefined },
    ],
  );
});

t.test('pods pre-injected by annotation are not waited for, as the injector would inject them again', async (t) => {
  const enabled = { [ANNOTATIONS.injectTrafficAgent]: 'enabled' };
  const disabled = { [ANNOTATIONS.injectTrafficAgent]: 'disabled' };
  const cases: ReadonlyArray<{ name: string; pod?: Record<string, string>; namespace?: Record<string, string>; waits: boolean }> = [
    { name: 'no annotation', waits: true },
    { name: 'the pod says enabled', pod: enabled, waits: false },
    { name: 'its namespace says enabled', namespace: enabled, waits: false },
    { name: 'the pod says disabled in a namespace that says enabled', pod: disabled, namespace: enabled, waits: true },
    { name: 'another value counts as unset', pod: { [ANNOTATIONS.injectTrafficAgent]: 'yes' }, namespace: enabled, waits: false },
    { name: 'the namespace says disabled', namespace: disabled, waits: true },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, clock, lines, log } = setup();
      if (c.namespace !== undefined) kube.namespaceAnnotationsOf.set('shop', c.namespace);
      kube.setPods(deployment('shop', 'web'), [agentPod('shop', 'web-0', c.pod === undefined ? {} : { annotations: c.pod })]);
      const start = clock.now();
      const result = await run(clock, removeAgents({ kube, clock, log }));
      t.strictSame(result.left, c.waits ? ['shop/web-0'] : []);
      t.strictSame(result.preInjected, c.waits ? [] : ['shop/web-0']);
      t.equal(clock.now() - start, c.waits ? WAIT_MS : 0);
      const said = lines.find((l) => /^not waiting for pods pre-injected/.test(l.msg));
      if (c.waits) t.equal(said, undefined, 'nothing said of pre-injection');
      else t.match(said, { level: 'info', msg: /telepresence\.io\/inject-traffic-agent=enabled.*the agent-injector gives them the agent again while it runs/, pods: ['shop/web-0'] });
    });
  }
});

t.test('a pre-injected pod is named once, though its replacement is new', async (t) => {
  const { kube, clock, lines, log } = setup();
  const enabled = { annotations: { [ANNOTATIONS.injectTrafficAgent]: 'enabled' } };
  const ref = deployment('shop', 'web');
  kube.setPods(ref, [agentPod('shop', 'web-0', enabled), agentPod('shop', 'other-0')]);
  clock.setTimer(2000, () => kube.setPods(ref, [agentPod('shop', 'web-0', enabled), agentPod('shop', 'other-0')]));
  clock.setTimer(3000, () => kube.setPods(ref, [agentPod('shop', 'web-1', enabled)]));
  const result = await run(clock, removeAgents({ kube, clock, log }));
  t.strictSame(result, { removed: [], failed: [], preInjected: ['shop/web-1'], left: [] });
  t.match(
    lines.filter((l) => /^not waiting/.test(l.msg)).map((l) => l['pods']),
    [['shop/web-0'], ['shop/web-1']],
  );
  t.match(lines.at(-1), { msg: 'no pod has an agent any more but the pre-injected ones', pods: ['shop/web-1'] });
});

t.test('failures', async (t) => {
  t.test('the entries cannot be listed: the run fails, nothing is removed', async (t) => {
    const { kube, clock, log } = setup();
    kube.listAgentConfigs = async () => {
      throw new TpError('config', 'forbidden', 'the traffic-manager may not list the telepresence-agents ConfigMaps');
    };
    await t.rejects(removeAgents({ kube, clock, log }), { code: 'forbidden' });
    t.strictSame(kube.calls, []);
  });

  t.test('an entry that cannot be removed is reported; the others are removed', async (t) => {
    const { kube, clock, lines, log } = setup();
    kube.maps.set('shop', { web: '{}', api: '{}' });
    const remove = kube.removeAgentConfig.bind(kube);
    kube.removeAgentConfig = async (namespace, name) => {
      if (name === 'web') throw new TpError('cluster', 'kube-api', 'could not write shop/telepresence-agents: etcd timeout');
      return remove(namespace, name);
    };
    const result = await run(clock, removeAgents({ kube, clock, log }));
    t.strictSame(result, { removed: ['shop/api'], failed: [{ entry: 'shop/web', error: 'could not write shop/telepresence-agents: etcd timeout' }], preInjected: [], left: [] });
    t.match(lines, [{ level: 'warn', msg: /could not remove an agent configuration; its pods keep the agent until they restart/, entry: 'shop/web' }, { entry: 'shop/api' }]);
  });

  t.test('an entry gone meanwhile is neither removed nor failed', async (t) => {
    const { kube, clock, log } = setup();
    kube.maps.set('shop', { web: '{}' });
    kube.removeAgentConfig = async () => false;
    const result = await run(clock, removeAgents({ kube, clock, log }));
    t.strictSame(result, { removed: [], failed: [], preInjected: [], left: [] });
  });

  t.test('a failed pod list is tried again', async (t) => {
    const { kube, clock, lines, log } = setup();
    let failures = 2;
    const list = kube.listPodsWithLabels.bind(kube);
    kube.listPodsWithLabels = async (labels) => {
      if (failures-- > 0) throw new TpError('cluster', 'kube-api', 'could not list the pods: connection reset');
      return list(labels);
    };
    const start = clock.now();
    const result = await run(clock, removeAgents({ kube, clock, log }));
    t.strictSame(result.left, []);
    t.equal(clock.now() - start, 2000, 'done at the third list');
    t.equal(lines.filter((l) => l.level === 'warn' && /could not list the pods that have an agent; trying again/.test(l.msg)).length, 2);
  });

  t.test('no list succeeds within the bound: said, and the run still succeeds', async (t) => {
    const { kube, clock, lines, log } = setup();
    kube.listPodsWithLabels = async () => {
      throw new TpError('cluster', 'kube-api', 'could not list the pods: connection reset');
    };
    const result = await run(clock, removeAgents({ kube, clock, log, waitMs: 5000 }));
    t.strictSame(result.left, []);
    t.match(lines.at(-1), { level: 'warn', msg: /could not list the pods that have an agent for 5 s; any that have one lose it at their next restart/ });
  });

  t.test('a namespace that cannot be read counts as not annotated', async (t) => {
    const { kube, clock, lines, log } = setup();
    kube.setPods(deployment('shop', 'web'), [agentPod('shop', 'web-0'), agentPod('shop', 'web-1')]);
    let reads = 0;
    kube.namespaceAnnotations = async () => {
      reads++;
      throw new TpError('config', 'forbidden', 'the traffic-manager may not read namespace shop');
    };
    const result = await run(clock, removeAgents({ kube, clock, log, waitMs: 3000 }));
    t.strictSame(result.left, ['shop/web-0', 'shop/web-1'], 'its pods are waited for');
    t.equal(reads, 1, 'read once');
    t.equal(lines.filter((l) => /cannot tell whether a namespace asks for pre-injection/.test(l.msg)).length, 1, 'said once');
  });
});

t.test("with the traffic-manager's own watcher: it evicts the pods of each removed entry, and the wait sees them go", async (t) => {
  const { kube, clock, lines, log } = setup();
  const labels = { app: 'web' };
  const base = workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }]);
  const web: KubeWorkload = { ...base, object: { ...base.object, spec: { ...base.object.spec!, replicas: 2 } } } as KubeWorkload;
  const svc = service('web', [{ name: 'http', port: 80, targetPort: 'http' }], labels);
  const config = buildAgentConfig(web, [svc], { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' });
  const hash = agentConfigHash(config);
  kube.workloads.push(web);
  kube.maps.set('default', { web: serializeAgentConfig(config) });
  const ref = deployment('default', 'web');
  kube.setPods(ref, [0, 1].map((i) => pod(`web-${i}`, { agent: true, hash, labels: { ...labels, ...injected } })));
  // The injector's part: each evicted pod is replaced by one without the agent.
  let n = 0;
  kube.onEvict = () => {
    const fresh = pod(`web-new-${n++}`, { labels });
    queueMicrotask(() => {
      kube.setPods(ref, [...(kube.pods.get('default/Deployment/web') ?? []), fresh]);
      kube.emitPod('ADDED', fresh);
    });
    return { outcome: 'evicted' };
  };
  const watcher = new AgentConfigWatcher({ kube, clock, log });
  watcher.start();
  t.teardown(() => watcher.stop());
  // The manager has long looked at the entry it had when the hook runs.
  await watcher.idle();
  const start = clock.now();
  const result = await run(clock, removeAgents({ kube, clock, log }));
  t.strictSame(result, { removed: ['default/web'], failed: [], preInjected: [], left: [] });
  t.strictSame(kube.calls, ['remove default/web', 'evict default/web-0', 'evict default/web-1']);
  t.ok(clock.now() - start < 10_000, 'well within the bound');
  t.strictSame(
    kube.pods.get('default/Deployment/web')?.map((p) => p.metadata?.name),
    ['web-new-0', 'web-new-1'],
  );
  t.match(lines.at(-1), { msg: 'no pod has an agent any more' });
  await watcher.idle();
});
