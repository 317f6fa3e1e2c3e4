import t from 'tap';
import { buildAgentConfig } from '../../src/manager/agent-config-builder.js';
import { AgentConfigWatcher } from '../../src/manager/rollout.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { serializeAgentConfig, type AgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod, type PodOptions } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const opts = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' } as const;

function config(kind: WorkloadKind = 'Deployment', image: string = opts.agentImage): AgentConfig {
  return buildAgentConfig(
    workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }], { kind }),
    [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })],
    { ...opts, agentImage: image },
  );
}

function setup() {
  const kube = new FakeKube();
  const lines: string[] = [];
  const watcher = new AgentConfigWatcher({ kube, clock: new FakeClock(), log: createLogger('traffic-manager', 'debug', (l) => lines.push(l)) });
  watcher.start();
  return { kube, watcher, lines };
}

const ref = (kind: WorkloadKind = 'Deployment') => ({ kind, name: 'web', namespace: 'default' });

t.test('an added or changed entry rolls out unless a live pod carries its hash', async (t) => {
  const hash = agentConfigHash(config());
  const cases: ReadonlyArray<{ name: string; pods: PodOptions[]; rollout: boolean }> = [
    { name: 'no pods at all', pods: [], rollout: true },
    { name: 'pods without the agent', pods: [{}, {}], rollout: true },
    { name: 'a pod with an older hash', pods: [{ agent: true, hash: 'aaaaaaaaaaaaaaaa' }], rollout: true },
    { name: 'a running pod with the hash', pods: [{}, { agent: true, hash }], rollout: false },
    { name: 'a pending pod with the hash (a rollout in progress)', pods: [{}, { agent: true, hash, phase: 'Pending' }], rollout: false },
    { name: 'only a terminating pod with the hash', pods: [{ agent: true, hash, deleting: true }], rollout: true },
    { name: 'only a failed pod with the hash', pods: [{ agent: true, hash, phase: 'Failed' }], rollout: true },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, watcher } = setup();
      kube.setPods(ref(), c.pods.map((p, i) => pod(`web-${i}`, p)));
      await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config()));
      await watcher.idle();
      t.strictSame(kube.calls, ['apply default/web', ...(c.rollout ? ['restart default/Deployment/web'] : [])]);
    });
  }
});

t.test('a bare ReplicaSet also has its live pods deleted', async (t) => {
  const { kube, watcher } = setup();
  kube.setPods(ref('ReplicaSet'), [pod('web-a'), pod('web-b', { deleting: true })]);
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config('ReplicaSet')));
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'restart default/ReplicaSet/web', 'delete-pod default/web-a']);
});

t.test('unchanged entries are left alone; a changed one is compared again', async (t) => {
  const { kube, watcher } = setup();
  const first = config();
  kube.setPods(ref(), [pod('web-0', { agent: true, hash: agentConfigHash(first) })]);
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(first));
  // Another entry of the namespace changes: web's is the same text, so nothing is listed or restarted.
  await kube.applyAgentConfig('default', 'other', 'not even JSON');
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config('Deployment', 'tp-local/traffic-agent:0.2.0')));
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web', 'apply default/other', 'apply default/web', 'restart default/Deployment/web']);
});

t.test('a removed entry rolls out pods that still carry an agent', async (t) => {
  const cases: ReadonlyArray<{ name: string; pods: PodOptions[]; rollout: boolean }> = [
    { name: 'a pod with the agent', pods: [{ agent: true, hash: 'x' }], rollout: true },
    { name: 'pods without the agent', pods: [{}], rollout: false },
    { name: 'only a terminating pod with the agent', pods: [{ agent: true, deleting: true }], rollout: false },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, watcher } = setup();
      const text = serializeAgentConfig(config());
      kube.maps.set('default', { web: text });
      kube.setPods(ref(), [pod('web-0', { agent: true, hash: agentConfigHash(config()) })]);
      // The watcher starts on the existing map: the pod has the hash, nothing to do.
      const again = new AgentConfigWatcher({ kube, clock: new FakeClock(), log: createLogger('m', 'error', () => undefined) });
      again.start();
      await again.idle();
      watcher.stop();
      t.strictSame(kube.calls, []);
      kube.setPods(ref(), c.pods.map((p, i) => pod(`web-${i}`, p)));
      await kube.removeAgentConfig('default', 'web');
      await again.idle();
      t.strictSame(kube.calls, ['remove default/web', ...(c.rollout ? ['restart default/Deployment/web'] : [])]);
    });
  }
});

t.test('a bad entry is logged and skipped', async (t) => {
  const { kube, watcher, lines } = setup();
  await kube.applyAgentConfig('default', 'web', '{"version": 99}');
  await watcher.idle();
  t.strictSame(kube.calls, ['apply default/web']);
  t.match(lines.join(''), /ignoring a bad agent configuration.*version 99/);
});

t.test('the restart stamps the clock’s time', async (t) => {
  const kube = new FakeKube();
  const clock = new FakeClock(Date.UTC(2025, 5, 1, 12, 0, 0));
  const stamps: string[] = [];
  kube.onRestart = (_ref, at) => stamps.push(at);
  const watcher = new AgentConfigWatcher({ kube, clock, log: createLogger('m', 'error', () => undefined) });
  watcher.start();
  await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config()));
  await watcher.idle();
  t.strictSame(stamps, ['2025-06-01T12:00:00.000Z']);
});
