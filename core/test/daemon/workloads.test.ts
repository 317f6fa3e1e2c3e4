import t from 'tap';
import type { AgentInfo, InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import { listWorkloads } from '../../src/daemon/workloads.js';
import { FakeKube } from '../fixtures/fake-kube.js';

function workload(kind: string, name: string, namespace: string, replicas: number | undefined, ready: number | undefined, owned = false): never {
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name, namespace, ...(owned ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'u1', controller: true }] } : {}) },
    spec: replicas === undefined ? {} : { replicas },
    status: ready === undefined ? {} : { readyReplicas: ready },
  } as never;
}

const agent = (namespace: string, name: string): AgentInfo => ({ namespace, name }) as AgentInfo;
const interceptOf = (id: string, namespace: string, workloadName: string): InterceptInfo => ({ id, spec: { namespace, workloadName } }) as InterceptInfo;

t.test('the workloads of a namespace with their agent state and intercepts, sorted by name', async (t) => {
  const kube = new FakeKube();
  kube.add(workload('Deployment', 'web', 'shop', 2, 1));
  kube.add(workload('ReplicaSet', 'web-5d8f', 'shop', 2, 1, true));
  kube.add(workload('ReplicaSet', 'batch', 'shop', undefined, undefined));
  kube.add(workload('StatefulSet', 'db', 'shop', 1, 1));
  kube.add(workload('Deployment', 'api', 'shop', 1, 0));
  kube.add(workload('Deployment', 'elsewhere', 'other', 1, 1));
  kube.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace: 'shop' }, data: { web: '{}', db: '{}' } } as never);
  const agents = [agent('shop', 'db'), agent('other', 'web')];
  const intercepts = [interceptOf('s1:web-shop', 'shop', 'web'), interceptOf('s2:web-other', 'other', 'web'), interceptOf('s1:db-shop', 'shop', 'db')];

  const { workloads } = await listWorkloads(kube, 'shop', agents, intercepts);
  t.strictSame(
    workloads.map((w) => [w.kind, w.name, w.readyReplicas, w.replicas, w.agentState]),
    [
      ['Deployment', 'api', 0, 1, 'none'],
      ['ReplicaSet', 'batch', 0, 1, 'none'],
      ['StatefulSet', 'db', 1, 1, 'installed'],
      ['Deployment', 'web', 1, 2, 'configured'],
    ],
    'a ReplicaSet of a Deployment is listed as the Deployment; defaults: 1 replica, 0 ready',
  );
  t.ok(workloads.every((w) => w.namespace === 'shop'), 'only the namespace asked for');
  t.strictSame(workloads.find((w) => w.name === 'web')?.intercepts.map((ii) => ii.id), ['s1:web-shop'], "an intercept of a namesake elsewhere is not this workload's");
  t.strictSame(workloads.find((w) => w.name === 'db')?.intercepts.map((ii) => ii.id), ['s1:db-shop']);
  t.strictSame(workloads.find((w) => w.name === 'api')?.intercepts, []);
});

t.test('a namespace without workloads or agents ConfigMap lists nothing', async (t) => {
  t.strictSame(await listWorkloads(new FakeKube(), 'empty', [], []), { workloads: [] });
});
