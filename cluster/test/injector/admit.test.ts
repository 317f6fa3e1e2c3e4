import type { V1Pod } from '@kubernetes/client-node';
import t from 'tap';
import { admit, type AdmissionRequest, type InjectorKube } from '../../src/injector/admit.js';
import { injectAgent } from '../../src/injector/inject.js';
import { applyJsonPatch, jsonEqual } from '../../src/injector/patch.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { PreInjector } from '../../src/injector/pre-inject.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { fakeKube } from './fake-kube.js';
import { BUILD, config, container, deployment, intercept, pod, service } from './samples.js';

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

// Pre-injection: the Deployment and Service that the manager would build webConfig from.
const INJECT = 'telepresence.io/inject-traffic-agent';
const workloads = { 'apps/web': deployment([container('app', ['http:8080'])]) };
const services = { apps: [service()] };

function withPreInjection(kube: InjectorKube) {
  return { kube, managerNamespace: 'tp-system', preInjector: new PreInjector(kube, BUILD) };
}

t.test('a pod that asks for pre-injection gets an entry written and the agent', async (t) => {
  const cases: ReadonlyArray<{ name: string; pod: V1Pod; namespaces?: Record<string, { annotations: Record<string, string> }>; why: RegExp }> = [
    { name: 'pod annotation enabled', pod: withAnnotation(webPod, INJECT, 'enabled'), why: /pod annotation telepresence.io\/inject-traffic-agent=enabled/ },
    {
      name: 'namespace annotation enabled',
      pod: webPod,
      namespaces: { apps: { annotations: { [INJECT]: 'enabled' } } },
      why: /namespace annotation telepresence.io\/inject-traffic-agent=enabled/,
    },
  ];
  for (const c of cases) {
    const kube = fakeKube({ owners, workloads, services, ...(c.namespaces === undefined ? {} : { namespaces: c.namespaces }) });
    const d = await admit(request(c.pod), withPreInjection(kube));
    t.equal(d.outcome, 'injected', `${c.name}: outcome`);
    t.match(d.reason, c.why, `${c.name}: reason names the annotation`);
    t.strictSame(kube.writes, ['apps/web'], `${c.name}: one entry written`);
    t.equal(kube.agentConfigEntry('apps', 'web'), serializeAgentConfig(webConfig), `${c.name}: the entry the manager builds from the Deployment and its Service`);
    t.equal(d.hash, agentConfigHash(webConfig), `${c.name}: hash`);
    t.ok(jsonEqual(applyJsonPatch(c.pod, d.patch), injectAgent(c.pod, webConfig)), `${c.name}: the patch injects that entry`);
  }
});

t.test('pre-injection that is not asked for, or finds the entry, writes nothing', async (t) => {
  const cases: ReadonlyArray<{
    name: string;
    pod: V1Pod;
    entries?: Record<string, string>;
    namespaces?: Record<string, { annotations: Record<string, string> }>;
    outcome: string;
    reason: RegExp;
    calls: string[];
  }> = [
    {
      name: 'namespace enabled, pod disabled',
      pod: withAnnotation(webPod, INJECT, 'disabled'),
      namespaces: { apps: { annotations: { [INJECT]: 'enabled' } } },
      outcome: 'skipped',
      reason: /disabled/,
      calls: [],
    },
    { name: 'no annotation', pod: webPod, outcome: 'skipped', reason: /^no agent configuration$/, calls: ['namespace apps'] },
    {
      name: 'namespace annotation disabled',
      pod: webPod,
      namespaces: { apps: { annotations: { [INJECT]: 'disabled' } } },
      outcome: 'skipped',
      reason: /^no agent configuration$/,
      calls: ['namespace apps'],
    },
    { name: 'pod annotation of another value', pod: withAnnotation(webPod, INJECT, 'yes'), outcome: 'skipped', reason: /^no agent configuration$/, calls: ['namespace apps'] },
    { name: 'entry already there', pod: withAnnotation(webPod, INJECT, 'enabled'), entries: { ...entries }, outcome: 'injected', reason: /^agent added$/, calls: [] },
  ];
  for (const c of cases) {
    const kube = fakeKube({ owners, workloads, services, ...(c.entries === undefined ? {} : { entries: c.entries }), ...(c.namespaces === undefined ? {} : { namespaces: c.namespaces }) });
    const d = await admit(request(c.pod), withPreInjection(kube));
    t.equal(d.outcome, c.outcome, `${c.name}: outcome`);
    t.match(d.reason, c.reason, `${c.name}: reason`);
    t.strictSame(kube.writes, [], `${c.name}: nothing written`);
    t.strictSame(kube.calls, c.calls, `${c.name}: calls`);
  }
});

t.test('pre-injection that cannot be done admits the pod unchanged', async (t) => {
  const enabled = withAnnotation(webPod, INJECT, 'enabled');
  const cases: ReadonlyArray<{ name: string; pod?: V1Pod; kube: InjectorKube & { writes: string[] }; outcome: string; reason: RegExp }> = [
    {
      name: 'the write fails',
      kube: fakeKube({ owners, workloads, services, writeError: new Error('configmaps "telepresence-agents" is forbidden') }),
      outcome: 'failed',
      reason: /^pre-injection \(pod annotation .*=enabled\) failed: configmaps "telepresence-agents" is forbidden$/,
    },
    {
      name: 'the namespace cannot be read',
      kube: fakeKube({ owners, workloads, services, namespaceError: new Error('namespaces "apps" is forbidden') }),
      outcome: 'failed',
      reason: /^cannot pre-inject: namespaces "apps" is forbidden$/,
    },
    {
      name: 'the namespace cannot be read, and only it could ask',
      pod: webPod,
      kube: fakeKube({ owners, workloads, services, namespaceError: new Error('namespaces "apps" is forbidden') }),
      outcome: 'failed',
      reason: /^cannot tell whether namespace apps asks for pre-injection: namespaces "apps" is forbidden$/,
    },
    {
      name: 'no Service selects the workload',
      kube: fakeKube({ owners, workloads, services: {} }),
      outcome: 'skipped',
      reason: /^pre-injection \(pod annotation .*\): deployment\/web has no Service selecting its pods/,
    },
    {
      name: 'the workload is gone',
      kube: fakeKube({ owners, workloads: {}, services }),
      outcome: 'skipped',
      reason: /deployment\/web is gone from namespace apps/,
    },
    {
      name: 'a numeric target port where Pod Security refuses the init container',
      kube: fakeKube({ owners, workloads, services: { apps: [service(8080)] }, namespaces: { apps: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } }),
      outcome: 'skipped',
      reason: /enforces Pod Security "restricted"/,
    },
  ];
  for (const c of cases) {
    const d = await admit(request(c.pod ?? enabled), withPreInjection(c.kube));
    t.equal(d.outcome, c.outcome, `${c.name}: outcome`);
    t.match(d.reason, c.reason, `${c.name}: reason`);
    t.equal(d.workload, 'Deployment/web', `${c.name}: workload`);
    t.strictSame(d.patch, [], `${c.name}: no patch`);
    t.strictSame(c.kube.writes, [], `${c.name}: nothing written`);
  }
});

t.test('sibling pods share one entry: one build and one write', async (t) => {
  const enabled = withAnnotation(webPod, INJECT, 'enabled');
  t.test('admitted one after the other', async (t) => {
    const kube = fakeKube({ owners, workloads, services });
    const deps = withPreInjection(kube);
    const first = await admit(request(enabled), deps);
    const second = await admit(request(enabled, { uid: 'u-2' }), deps);
    t.strictSame([first.outcome, second.outcome], ['injected', 'injected']);
    t.equal(second.reason, 'agent added', 'the second finds the entry in the cache');
    t.strictSame(kube.writes, ['apps/web'], 'one write');
    t.strictSame(kube.calls, ['namespace apps', 'read Deployment/web', 'services apps', 'add apps/web'], 'the second asks nothing more');
    t.strictSame(second.patch, first.patch, 'the same patch');
  });
  t.test('admitted together', async (t) => {
    const kube = fakeKube({ owners, workloads, services });
    const deps = withPreInjection(kube);
    const decisions = await Promise.all([admit(request(enabled), deps), admit(request(enabled, { uid: 'u-2' }), deps), admit(request(enabled, { uid: 'u-3' }), deps)]);
    t.strictSame(
      decisions.map((d) => d.outcome),
      ['injected', 'injected', 'injected'],
    );
    t.strictSame(kube.writes, ['apps/web'], 'one write');
    t.equal(kube.calls.filter((c) => c.startsWith('read ')).length, 1, 'one build');
    t.equal(kube.calls.filter((c) => c.startsWith('add ')).length, 1, 'one write attempt');
  });
});

t.test('without a pre-injector, an annotated pod with no entry is admitted unchanged', async (t) => {
  const kube = fakeKube({ owners, workloads, services });
  const d = await admit(request(withAnnotation(webPod, INJECT, 'enabled')), { kube, managerNamespace: 'tp-system' });
  t.equal(d.outcome, 'skipped');
  t.strictSame(kube.calls, []);
});
