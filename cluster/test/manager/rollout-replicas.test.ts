/**
 * The ConfigMap watcher restarts a workload only when it has pods to replace or wants some: a
 * workload scaled to 0 keeps its template (its pods of a later scale-up pass the injector anyway).
 */
import t from 'tap';
import { buildAgentConfig } from '../../src/manager/agent-config-builder.js';
import type { KubeWorkload } from '../../src/manager/kube.js';
import { AgentConfigWatcher, desiredReplicas } from '../../src/manager/rollout.js';
import { serializeAgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod } from './fake-kube.js';
import { service } from './fixtures.js';

const opts = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' } as const;

function web(kind: WorkloadKind, replicas: number | undefined): KubeWorkload {
  const labels = { app: 'web' };
  const containers = [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }];
  return {
    kind,
    name: 'web',
    namespace: 'default',
    object: {
      metadata: { name: 'web', namespace: 'default' },
      spec: { ...(replicas === undefined ? {} : { replicas }), selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers } } },
    },
  };
}

t.test('an entry for a workload with 0 replicas and no pod: no restart', async (t) => {
  const cases: ReadonlyArray<{ name: string; kind: WorkloadKind; replicas: number | undefined; pods: number; rollout: boolean }> = [
    { name: 'Deployment scaled to 0', kind: 'Deployment', replicas: 0, pods: 0, rollout: false },
    { name: 'StatefulSet scaled to 0', kind: 'StatefulSet', replicas: 0, pods: 0, rollout: false },
    { name: 'ReplicaSet scaled to 0', kind: 'ReplicaSet', replicas: 0, pods: 0, rollout: false },
    { name: 'scaled to 0 with a pod still running: that pod is replaced', kind: 'Deployment', replicas: 0, pods: 1, rollout: true },
    { name: 'one replica wanted, no pod yet', kind: 'Deployment', replicas: 1, pods: 0, rollout: true },
    { name: 'replicas left out (one)', kind: 'Deployment', replicas: undefined, pods: 0, rollout: true },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const kube = new FakeKube();
      const w = web(c.kind, c.replicas);
      kube.workloads.push(w);
      kube.setPods({ kind: c.kind, name: 'web', namespace: 'default' }, Array.from({ length: c.pods }, (_, i) => pod(`web-${i}`)));
      const lines: string[] = [];
      const watcher = new AgentConfigWatcher({ kube, clock: new FakeClock(), log: createLogger('m', 'info', (l) => lines.push(l)) });
      watcher.start();
      const config = buildAgentConfig(w, [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })], opts);
      await kube.applyAgentConfig('default', 'web', serializeAgentConfig(config));
      await watcher.idle();
      t.strictSame(kube.calls, ['apply default/web', ...(c.rollout ? [`restart default/${c.kind}/web`] : [])]);
      if (!c.rollout) t.match(lines.join(''), /not rolling out a workload with 0 replicas/, 'and says why in its log');
      watcher.stop();
    });
  }
});

t.test('desiredReplicas: spec.replicas, 1 when left out', async (t) => {
  t.equal(desiredReplicas(web('Deployment', 0)), 0);
  t.equal(desiredReplicas(web('Deployment', 3)), 3);
  t.equal(desiredReplicas(web('Deployment', undefined)), 1);
});
