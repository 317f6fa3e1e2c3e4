import type { V1Pod } from '@kubernetes/client-node';
import t from 'tap';
import { admit, type AdmissionRequest, type InjectorKube } from '../../src/injector/admit.js';
import { injectAgent } from '../../src/injector/inject.js';
import { applyJsonPatch, jsonEqual } from '../../src/injector/patch.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { fakeKube } from './fake-kube.js';
import { config, container, intercept, pod } from './samples.js';

const webConfig = config({ app: [intercept('http', 8080, 9901)] });
const webPod = pod([container('app', ['http:8080'])]);
const entries = { 'apps/web': serializeAgentConfig(webConfig) };
const owners = { 'apps/web-5d8f7c6b9': { kind: 'Deployment', name: 'web' } };

function request(object: unknown, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'apps', operation: 'CREATE', object, ...extra };
}

function withOwner(p: V1Pod, kind: string, name: string): V1Pod {
  const out = structuredClone(p);
  out.metadata = { ...out.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind, name, uid: 'x', controller: true }] };
  return out;
}

function withAnnotation(p: V1Pod, key: string, value: string): V1Pod {
  const out = structuredClone(p);
  out.metadata = { ...out.metadata, annotations: { [key]: value } };
  return out;
}

t.test('a pod of a Deployment with an entry gets the agent', async (t) => {
  const kube = fakeKube({ entries, owners });
  const d = await admit(request(webPod), { kube, managerNamespace: 'tp-system' });
  t.equal(d.outcome, 'injected');
  t.equal(d.workload, 'Deployment/web');
  t.match(d.hash, /^[0-9a-f]{16}$/);
  t.ok(jsonEqual(applyJsonPatch(webPod, d.patch), injectAgent(webPod, webConfig)), 'the patch gives injectAgent of the pod');
  t.strictSame(kube.lookups, ['apps/web-5d8f7c6b9'], 'one ReplicaSet lookup');
});

t.test('decisions that admit the pod unchanged', async (t) => {
  const statefulConfig = config({ app: [intercept('http', 8080, 9901)] }, { workloadKind: 'StatefulSet' });
  const cases: ReadonlyArray<{ name: string; req: AdmissionRequest; kube?: InjectorKube; outcome: string; reason: RegExp }> = [
    { name: 'kube-system', req: request(webPod, { namespace: 'kube-system' }), outcome: 'skipped', reason: /kube-system is never injected/ },
    { name: 'the manager namespace', req: request(webPod, { namespace: 'tp-system' }), outcome: 'skipped', reason: /tp-system is never injected/ },
    { name: 'an update', req: request(webPod, { operation: 'UPDATE' }), outcome: 'skipped', reason: /not a pod creation/ },
    { name: 'not a pod', req: request(webPod, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }), outcome: 'skipped', reason: /not a pod creation/ },
    { name: 'no object', req: request(undefined), outcome: 'skipped', reason: /no pod/ },
    {
      name: 'annotation disabled',
      req: request(withAnnotation(webPod, 'telepresence.io/inject-traffic-agent', 'disabled')),
      outcome: 'skipped',
      reason: /disabled/,
    },
    { name: 'host network', req: request({ ...webPod, spec: { ...webPod.spec, hostNetwork: true } }), outcome: 'skipped', reason: /host network/ },
    { name: 'no owner', req: request({ ...webPod, metadata: { name: 'bare' } }), outcome: 'skipped', reason: /not owned/ },
    { name: 'a Job', req: request(withOwner(webPod, 'Job', 'web')), outcome: 'skipped', reason: /not owned/ },
    {
      name: 'a ReplicaSet owned by something else',
      req: request(webPod),
      kube: fakeKube({ entries, owners: { 'apps/web-5d8f7c6b9': { kind: 'Rollout', name: 'web' } } }),
      outcome: 'skipped',
      reason: /not owned/,
    },
    { name: 'no entry', req: request(webPod), kube: fakeKube({ entries: {}, owners }), outcome: 'skipped', reason: /no agent configuration/ },
    {
      name: 'an entry for another kind',
      req: request(webPod),
      kube: fakeKube({ entries: { 'apps/web': serializeAgentConfig(statefulConfig) }, owners }),
      outcome: 'skipped',
      reason: /for StatefulSet/,
    },
    {
      name: 'already injected',
      req: request(injectAgent(webPod, webConfig)),
      outcome: 'skipped',
      reason: /already carries this agent/,
    },
    {
      name: 'a bad entry',
      req: request(webPod),
      kube: fakeKube({ entries: { 'apps/web': '{"version": 99}' }, owners }),
      outcome: 'failed',
      reason: /version 99/,
    },
    {
      name: 'the ReplicaSet lookup fails',
      req: request(webPod),
      kube: fakeKube({ entries, ownerError: new Error('replicasets.apps "web-5d8f7c6b9" is forbidden') }),
      outcome: 'failed',
      reason: /forbidden/,
    },
    {
      name: 'a port that cannot be hidden',
      req: request(pod([container('app', ['http:8080', 'tm-http:8081'])])),
      outcome: 'failed',
      reason: /cannot hide port/,
    },
  ];
  for (const c of cases) {
    const d = await admit(c.req, { kube: c.kube ?? fakeKube({ entries, owners }), managerNamespace: 'tp-system' });
    t.equal(d.outcome, c.outcome, `${c.name}: outcome`);
    t.match(d.reason, c.reason, `${c.name}: reason`);
    t.strictSame(d.patch, [], `${c.name}: no patch`);
  }
});

t.test('StatefulSets and bare ReplicaSets are found without a Deployment', async (t) => {
  const cases: ReadonlyArray<{ kind: 'StatefulSet' | 'ReplicaSet'; owner: string }> = [
    { kind: 'StatefulSet', owner: 'web' },
    { kind: 'ReplicaSet', owner: 'web' },
  ];
  for (const c of cases) {
    const cfg = config({ app: [intercept('http', 8080, 9901)] }, { workloadKind: c.kind });
    const kube = fakeKube({ entries: { 'apps/web': serializeAgentConfig(cfg) }, owners: {} });
    const d = await admit(request(withOwner(webPod, c.kind, c.owner)), { kube, managerNamespace: 'tp-system' });
    t.equal(d.outcome, 'injected', c.kind);
    t.equal(d.workload, `${c.kind}/web`);
    t.strictSame(kube.lookups, c.kind === 'ReplicaSet' ? ['apps/web'] : [], `${c.kind}: lookups`);
  }
});
