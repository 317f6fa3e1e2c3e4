import t from 'tap';
import { checkWebhook, parseCaBundle } from '../../src/doctor/webhook.js';
import { TpError } from '../../src/errors.js';
import { makeInjectorTls } from '../../src/install/certs.js';
import { webhookConfiguration } from '../../src/install/manifests.js';
import type { KubeObject } from '../../src/kube/kube-api.js';
import type { V1Pod } from '../../src/kube/kube-types.js';
import { FakeDoctorCluster } from './fixtures/fake-doctor.js';

// One real CA for the file (RSA keys take a moment): the caBundle install writes.
const tls = makeInjectorTls('agent-injector', 'tp-system');
const NOW = new Date();
const options = { managerNamespace: 'tp-system', namespace: 'shop', now: NOW };

function registration(): KubeObject {
  return webhookConfiguration({ namespace: 'tp-system', managerImage: 'm', injectorImage: 'i', agentImage: 'a' }, tls.caCert);
}

function slice(ready: boolean | undefined): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'agent-injector-x1', namespace: 'tp-system', labels: { 'kubernetes.io/service-name': 'agent-injector' } },
    ports: [{ name: 'https', port: 8443 }],
    endpoints: [{ addresses: ['10.244.0.9'], ...(ready === undefined ? {} : { conditions: { ready } }), targetRef: { kind: 'Pod', name: 'agent-injector-abc' } }],
  } as KubeObject;
}

/** A cluster whose webhook is registered and served, and whose namespace shop has workload web. */
function healthy(): FakeDoctorCluster {
  const kube = new FakeDoctorCluster();
  kube.add(registration());
  kube.add(slice(true));
  return kube;
}

const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web:1', ports: [{ name: 'http', containerPort: 8080 }] }] } };

function withAgentConfig(kube: FakeDoctorCluster, kind = 'Deployment'): void {
  kube.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace: 'shop' }, data: { web: JSON.stringify({ agentName: 'web', workloadKind: kind, namespace: 'shop' }) } } as KubeObject);
  if (kind === 'Deployment') {
    kube.add({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: { template } } as KubeObject);
    for (const [name, revision] of [['web-old', '1'], ['web-new', '2']] as const) {
      kube.add({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name, namespace: 'shop', uid: `uid-${name}`, annotations: { 'deployment.kubernetes.io/revision': revision }, ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }] },
        spec: { template },
      } as KubeObject);
    }
  } else {
    kube.add({ apiVersion: 'apps/v1', kind, metadata: { name: 'web', namespace: 'shop', uid: 'uid-sts' }, spec: { template } } as KubeObject);
  }
}

/** What the API server returns when the injector patched the pod. */
async function injected(_ns: string, pod: V1Pod): Promise<V1Pod> {
  const out = structuredClone(pod);
  out.spec?.containers.push({ name: 'traffic-agent', image: 'tp-local/traffic-agent:1.2.3' });
  return out;
}

t.test('parseCaBundle: PEM certificates valid now, or what is wrong', (t) => {
  const b64 = Buffer.from(tls.caCert).toString('base64');
  const good = parseCaBundle(b64, NOW);
  t.ok('certs' in good && good.certs.length === 1);
  t.match(parseCaBundle(undefined, NOW), { problem: 'has no caBundle' });
  t.match(parseCaBundle(Buffer.from('not a pem').toString('base64'), NOW), { problem: /no PEM certificate/ });
  const later = new Date(NOW.getTime() + 20 * 365 * 24 * 3600 * 1000);
  t.match(parseCaBundle(b64, later), { problem: /not valid now/ });
  t.end();
});

t.test('no registration: the API server never calls the injector', async (t) => {
  const f = await checkWebhook(new FakeDoctorCluster(), options);
  t.equal(f.status, 'fail');
  t.match(f.message, /MutatingWebhookConfiguration agent-injector-webhook-tp-system is missing/);
  t.equal(f.fix, 'kubectl telepresence install');
});

t.test('a namespace the webhook excludes cannot be intercepted', async (t) => {
  const f = await checkWebhook(healthy(), { ...options, namespace: 'kube-system' });
  t.equal(f.status, 'fail');
  t.match(f.message, /skips namespace kube-system/);
});

t.test('an expired or garbled caBundle fails', async (t) => {
  const kube = healthy();
  const f = await checkWebhook(kube, { ...options, now: new Date(NOW.getTime() + 20 * 365 * 24 * 3600 * 1000) });
  t.equal(f.status, 'fail');
  t.match(f.message, /caBundle whose certificate is not valid now/);
});

for (const [what, add] of [
  ['no EndpointSlice', undefined],
  ['an endpoint that is not ready', slice(false)],
  // What the API server lists for a Service scaled to 0: a slice whose endpoints are null.
  ['a slice without endpoints', { ...slice(true), endpoints: null } as KubeObject],
] as const) {
  t.test(`${what}: the injector Service has no ready endpoint`, async (t) => {
    const kube = new FakeDoctorCluster();
    kube.add(registration());
    if (add !== undefined) kube.add(add);
    const f = await checkWebhook(kube, options);
    t.equal(f.status, 'fail');
    t.match(f.message, /Service tp-system\/agent-injector has no ready endpoint: .*failurePolicy is Ignore/);
    t.equal(kube.certificateChecks.length, 0);
  });
}

t.test('a served certificate the caBundle does not verify fails', async (t) => {
  const kube = healthy();
  kube.certificateProblem = new TpError('cluster', 'webhook-certificate', 'unable to verify the first certificate');
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'fail');
  t.equal(f.message, "the API server would refuse the agent-injector's certificate: unable to verify the first certificate");
  t.strictSame(kube.certificateChecks, ['tp-system/agent-injector-abc:8443 as agent-injector.tp-system.svc']);
});

t.test('without an agent configuration in the namespace: no dry-run, and the finding says what was checked instead', async (t) => {
  const kube = healthy();
  // An endpoint without conditions is ready (EndpointSlice API).
  kube.objects.clear();
  kube.add(registration());
  kube.add(slice(undefined));
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'ok');
  t.match(f.message, /^registered \(agent-injector-webhook-tp-system\), CA bundle valid until .*, 1 ready endpoint, its certificate verified by the CA bundle for agent-injector.tp-system.svc; not dry-run: no workload in namespace shop has an agent configuration/);
  t.equal(kube.dryRuns.length, 0);
});

t.test("a Deployment with an agent configuration: a dry-run pod of its newest ReplicaSet comes back with the agent", async (t) => {
  const kube = healthy();
  withAgentConfig(kube);
  kube.dryRun = injected;
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'ok');
  t.match(f.message, /^the API server called the agent-injector: a dry-run pod of deployment\/web came back with the traffic-agent/);
  const pod = kube.dryRuns[0];
  t.match(pod?.metadata, { generateName: 'web-tp-doctor-', namespace: 'shop', labels: { app: 'web' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-new', uid: 'uid-web-new', controller: true }] });
  t.strictSame(pod?.spec, template.spec);
});

t.test('a StatefulSet with an agent configuration: the dry-run pod is owned by it', async (t) => {
  const kube = healthy();
  withAgentConfig(kube, 'StatefulSet');
  kube.dryRun = injected;
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'ok');
  t.match(kube.dryRuns[0]?.metadata?.ownerReferences, [{ kind: 'StatefulSet', name: 'web', uid: 'uid-sts' }]);
});

t.test('a dry-run pod that comes back without the agent fails, pointing at the injector logs', async (t) => {
  const kube = healthy();
  withAgentConfig(kube);
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'fail');
  t.match(f.message, /a dry-run pod of deployment\/web came back without the traffic-agent/);
  t.equal(f.fix, 'kubectl --context kind-tp -n tp-system logs deployment/agent-injector');
});

t.test('no right to create pods: no dry-run, and it says so', async (t) => {
  const kube = healthy();
  withAgentConfig(kube);
  kube.denied.add('create pods in shop');
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'ok');
  t.match(f.message, /not dry-run: you may not create pods in shop/);
  t.equal(kube.dryRuns.length, 0);
});

t.test('a dry-run the API server refuses (admission) is a warning with its message', async (t) => {
  const kube = healthy();
  withAgentConfig(kube);
  kube.dryRun = async () => {
    throw new TpError('config', 'kube-forbidden', 'pods "web-tp-doctor-x" is forbidden: violates PodSecurity "restricted:latest"', { hint: 'ask a cluster admin' });
  };
  const f = await checkWebhook(kube, options);
  t.equal(f.status, 'warn');
  t.match(f.message, /refused a dry-run pod of deployment\/web: .*violates PodSecurity/);
});
