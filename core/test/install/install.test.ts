import t from 'tap';
import type { Clock } from '../../src/clock.js';
import { defaultImages, deploymentReadiness, install, uninstallEverything, type InstallRequest } from '../../src/install/install.js';
import { agentResourcesEnvValue, baseManifests, injectorClusterRole, injectorDeployment, managerClusterRole, managerDeployment, webhookConfiguration } from '../../src/install/manifests.js';
import type { KubeObject } from '../../src/kube/kube-api.js';
import { FakeKube } from '../fixtures/fake-kube.js';

const TLS = { caCert: 'CA-PEM', cert: 'CERT-PEM', key: 'KEY-PEM' };
const REQ: InstallRequest = { namespace: 'tp-system', ...(() => { const i = defaultImages('1.2.3'); return { managerImage: i.manager, injectorImage: i.injector, agentImage: i.agent }; })() };

function fakeClock(): Clock & { t: number } {
  const c = { t: 0, now: () => c.t, sleep: async (ms: number) => void (c.t += ms) };
  return c;
}

/** Deployments become available on the third read after install applied them. */
function rollingOut(kube: FakeKube): void {
  const reads = new Map<string, number>();
  kube.onGetDeployment = (d) => {
    const name = d.metadata?.name ?? '';
    const n = (reads.get(name) ?? 0) + 1;
    reads.set(name, n);
    const ready = n >= 3 ? 1 : 0;
    return { ...d, status: { replicas: 1, updatedReplicas: 1, availableReplicas: ready, observedGeneration: 1, conditions: [{ type: 'Available', status: ready === 1 ? 'True' : 'False' }] } } as KubeObject;
  };
}

t.test('default images are tp-local/<program>:<version>', (t) => {
  t.strictSame(defaultImages('1.2.3'), { manager: 'tp-local/traffic-manager:1.2.3', injector: 'tp-local/agent-injector:1.2.3', agent: 'tp-local/traffic-agent:1.2.3' });
  t.end();
});

t.test('the manifests', (t) => {
  t.matchSnapshot([...baseManifests(REQ), managerDeployment(REQ), injectorDeployment(REQ), webhookConfiguration(REQ, 'CA-PEM')], 'every object install applies');
  const webhook = webhookConfiguration(REQ, 'CA-PEM').webhooks?.[0];
  t.match(webhook, {
    clientConfig: { service: { name: 'agent-injector', namespace: 'tp-system', path: '/agent-injector/mutate', port: 443 }, caBundle: Buffer.from('CA-PEM').toString('base64') },
    failurePolicy: 'Ignore',
    timeoutSeconds: 5,
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    rules: [{ operations: ['CREATE'], resources: ['pods'] }],
    namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'tp-system'] }] },
  });
  const mgr = managerDeployment(REQ).spec?.template.spec?.containers[0];
  t.equal(mgr?.image, 'tp-local/traffic-manager:1.2.3');
  t.equal(mgr?.imagePullPolicy, 'IfNotPresent');
  t.match(mgr?.env, [
    { name: 'TP_MANAGER_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'TP_MANAGER_POD_IPS', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
    { name: 'TP_AGENT_IMAGE', value: 'tp-local/traffic-agent:1.2.3' },
  ]);
  const rules = managerClusterRole(REQ).rules ?? [];
  t.ok(rules.some((r) => r.resources?.includes('deployments') && r.verbs.includes('patch')), 'the manager may patch workloads');
  t.ok(rules.some((r) => r.resources?.includes('configmaps') && r.verbs.includes('delete')), 'and write ConfigMaps');
  t.ok(rules.some((r) => r.apiGroups?.includes('') && r.resources?.includes('nodes') && r.verbs.includes('list')), "outbound access: list the nodes (their podCIDRs)");
  t.ok(rules.some((r) => r.apiGroups?.includes('networking.k8s.io') && r.resources?.includes('servicecidrs') && r.verbs.includes('list')), 'and the ServiceCIDRs');
  t.ok(rules.some((r) => r.resources?.includes('services') && r.verbs.includes('create')), 'and dry-run create a Service (the Service range before ServiceCIDRs)');
  // Pre-injection: the injector builds and writes entries with the manager's settings.
  const inj = injectorDeployment(REQ).spec?.template.spec?.containers[0];
  t.match(inj?.env, [
    { name: 'TP_MANAGER_NAMESPACE' },
    { name: 'TP_AGENT_IMAGE', value: 'tp-local/traffic-agent:1.2.3' },
    { name: 'TP_MANAGER_PORT', value: '8081' },
  ]);
  const injRules = injectorClusterRole(REQ).rules ?? [];
  const injectorMay = (resource: string, verb: string): boolean => injRules.some((r) => r.apiGroups?.includes('') && r.resources?.includes(resource) && r.verbs.includes(verb));
  t.ok(['create', 'update'].every((v) => injectorMay('configmaps', v)), 'the injector may create and update ConfigMaps');
  t.ok(injectorMay('services', 'list') && injectorMay('namespaces', 'get'), 'and list Services and read namespaces');
  t.notOk(injectorMay('configmaps', 'delete'), 'but never deletes a ConfigMap');
  for (const obj of [...baseManifests(REQ), managerDeployment(REQ), webhookConfiguration(REQ, 'x')]) {
    t.equal(obj.metadata?.labels?.['app.kubernetes.io/managed-by'], 'telepresence-ts', `${obj.kind ?? ''} is labelled`);
  }
  t.end();
});

t.test('install applies everything, then waits with progress lines', async (t) => {
  const kube = new FakeKube();
  rollingOut(kube);
  const progress: string[] = [];
  const result = await install({ kube, clock: fakeClock(), progress: (l) => progress.push(l), makeTls: () => TLS }, REQ);
  t.matchSnapshot(kube.log, 'apply order');
  t.equal(result.newCertificates, true);
  t.matchSnapshot(progress, 'progress lines');
  t.ok(progress.includes('deployment/traffic-manager is available'));
});

t.test('re-running install keeps the TLS Secret (and so the running injector) as it is', async (t) => {
  const kube = new FakeKube();
  rollingOut(kube);
  const deps = { kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS };
  await install(deps, REQ);
  let made = 0;
  const second = await install({ ...deps, makeTls: () => (made++, { ...TLS, caCert: 'OTHER' }) }, REQ);
  t.equal(made, 0, 'no new certificates');
  t.equal(second.newCertificates, false);
  const webhook = await kube.get<ReturnType<typeof webhookConfiguration>>({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: 'agent-injector-webhook-tp-system' });
  t.equal(webhook?.webhooks?.[0]?.clientConfig.caBundle, Buffer.from('CA-PEM').toString('base64'));
});

t.test('a rollout that never finishes times out and says why', async (t) => {
  const kube = new FakeKube();
  kube.add({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'traffic-manager-abc', namespace: 'tp-system', labels: { 'app.kubernetes.io/name': 'traffic-manager' } },
    status: { containerStatuses: [{ name: 'traffic-manager', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s restarting' } } }] },
  } as KubeObject);
  const err = await install({ kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, { ...REQ, timeoutMs: 10_000 }).catch((e: unknown) => e);
  t.match(err, { category: 'cluster', code: 'install-timeout', message: /within 10s: traffic-manager-abc: CrashLoopBackOff: back-off 10s restarting/, hint: /kubectl -n tp-system get pods/ });
});

t.test('an image the nodes cannot pull is said at once, with the image and the --registry fix', async (t) => {
  const kube = new FakeKube();
  kube.add({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'traffic-manager-abc', namespace: 'tp-system', labels: { 'app.kubernetes.io/name': 'traffic-manager' } },
    spec: { containers: [{ name: 'traffic-manager', image: REQ.managerImage }] },
    status: { containerStatuses: [{ name: 'traffic-manager', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } }] },
  } as KubeObject);
  const clock = fakeClock();
  const started = clock.now();
  const err = await install({ kube, clock, progress: () => undefined, makeTls: () => TLS }, { ...REQ, timeoutMs: 120_000 }).catch((e: unknown) => e);
  t.match(err, {
    category: 'config',
    code: 'image-pull-failed',
    message: "the cluster's nodes cannot pull image tp-local/traffic-manager:1.2.3: traffic-manager-abc: ImagePullBackOff: Back-off pulling image",
    hint: /install --registry <host\/path>/,
  });
  t.equal(clock.now() - started, 0, 'on the first look, not after the timeout');
});

t.test("pods of an earlier template that cannot pull their image do not fail an install that replaces them", async (t) => {
  const kube = new FakeKube();
  rollingOut(kube);
  kube.add({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'traffic-manager-old', namespace: 'tp-system', labels: { 'app.kubernetes.io/name': 'traffic-manager' } },
    spec: { containers: [{ name: 'traffic-manager', image: '127.0.0.1:1/nowhere/traffic-manager:1.2.3' }] },
    status: { containerStatuses: [{ name: 'traffic-manager', state: { waiting: { reason: 'ErrImagePull', message: 'connection refused' } } }] },
  } as KubeObject);
  const result = await install({ kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, REQ);
  t.equal(result.images.manager, 'tp-local/traffic-manager:1.2.3', 'installed: the old pod is on its way out');
});

t.test('--no-wait and --dry-run do not wait', async (t) => {
  const kube = new FakeKube();
  await install({ kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, { ...REQ, wait: false });
  const dry = new FakeKube();
  await install({ kube: dry, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, { ...REQ, dryRun: true });
  t.equal(dry.objects.size, 0, 'dry run stores nothing');
  t.ok(dry.log.every((l) => l.endsWith('(dry run)')));
});

t.test('deploymentReadiness', (t) => {
  t.strictSame(deploymentReadiness(undefined), { ready: false, summary: 'not found' });
  const d = { metadata: { generation: 2 }, spec: { replicas: 1 }, status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1, conditions: [{ type: 'Available', status: 'True' }] } };
  t.equal(deploymentReadiness(d as never).ready, false, 'a newer generation is not observed yet');
  t.equal(deploymentReadiness({ ...d, metadata: { generation: 1 } } as never).ready, true);
  t.end();
});

t.test('uninstall --everything removes agents first, then this installation only', async (t) => {
  const kube = new FakeKube();
  rollingOut(kube);
  await install({ kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, REQ);
  // Another installation, in another namespace, must survive.
  await install({ kube, clock: fakeClock(), progress: () => undefined, makeTls: () => TLS }, { ...REQ, namespace: 'tp-other' });
  kube.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace: 'apps' } });
  // An agent pod that goes away after the manager removed its entry.
  kube.add({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'echo-1', namespace: 'apps', labels: { 'telepresence.io/agent-injected': 'true' } } });
  const clock = fakeClock();
  const progress: string[] = [];
  const result = await uninstallEverything(
    {
      kube,
      clock: { now: () => clock.now(), sleep: async (ms) => { await clock.sleep(ms); kube.objects.delete('Pod/apps/echo-1'); } },
      progress: (l) => progress.push(l),
      removeAllAgents: async () => ['apps/echo'],
    },
    'tp-system',
  );
  t.strictSame(result.agentsRemoved, ['apps/echo']);
  t.ok(progress.some((l) => /waiting for the workloads to roll out/.test(l)));
  t.matchSnapshot(result.deleted.sort(), 'deleted');
  const left = [...kube.objects.keys()].sort();
  t.notOk(left.some((k) => k.includes('/tp-system/') || k.endsWith('-tp-system') || k === 'Namespace//tp-system'), 'nothing of tp-system is left');
  t.ok(left.includes('Deployment/tp-other/traffic-manager'), 'the other installation is untouched');
  t.notOk(left.includes('ConfigMap/apps/telepresence-agents'), 'agent ConfigMaps are gone');
});

t.test('the options the Helm chart sets: absent by default, applied when given', async (t) => {
  const plain = [managerDeployment(REQ), injectorDeployment(REQ)].map((d) => d.spec?.template.spec);
  t.ok(plain.every((s) => s?.nodeSelector === undefined && s?.tolerations === undefined && s?.containers[0]?.resources === undefined), 'no scheduling or resources unless asked');
  t.match(webhookConfiguration(REQ, 'x').webhooks?.[0], { failurePolicy: 'Ignore', timeoutSeconds: 5 });
  const req: InstallRequest = {
    ...REQ,
    managerResources: { limits: { memory: '128Mi' } },
    injectorResources: { requests: { cpu: '50m' } },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Exists' }],
    webhookFailurePolicy: 'Fail',
    webhookTimeoutSeconds: 10,
    injectableNamespaces: { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'env', operator: 'Exists' }] },
  };
  t.match(managerDeployment(req).spec?.template.spec, { nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ key: 'dedicated' }], containers: [{ resources: { limits: { memory: '128Mi' } } }] });
  t.match(injectorDeployment(req).spec?.template.spec, { containers: [{ resources: { requests: { cpu: '50m' } } }] });
  t.strictSame(webhookConfiguration(req, 'x').webhooks?.[0]?.namespaceSelector, {
    matchLabels: { team: 'a' },
    matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'tp-system'] }, { key: 'env', operator: 'Exists' }],
  }, 'the selector narrows the namespaces; kube-system and the manager\'s own stay excluded');
  t.match(webhookConfiguration(req, 'x').webhooks?.[0], { failurePolicy: 'Fail', timeoutSeconds: 10 });
});

t.test("the agents' settings go to both programs that build agent configurations, alike", async (t) => {
  const env = (req: InstallRequest) =>
    [managerDeployment(req), injectorDeployment(req)].map((d) =>
      Object.fromEntries((d.spec?.template.spec?.containers[0]?.env ?? []).filter((e) => e.name.startsWith('TP_AGENT_')).map((e) => [e.name, e.value])),
    );
  const defaults = { TP_AGENT_IMAGE: REQ.agentImage, TP_AGENT_LOG_LEVEL: 'info', TP_AGENT_RESOURCES: '{}' };
  t.strictSame(env(REQ), [defaults, defaults], 'the defaults: info, and no resources (the injector then applies its own)');
  const set = {
    ...defaults,
    TP_AGENT_LOG_LEVEL: 'debug',
    // Keys sorted, as Helm's toJson writes the chart's agent.resources.
    TP_AGENT_RESOURCES: '{"limits":{"memory":"256Mi"},"requests":{"cpu":"50m","memory":"64Mi"}}',
  };
  t.strictSame(env({ ...REQ, agentLogLevel: 'debug', agentResources: { requests: { memory: '64Mi', cpu: '50m' }, limits: { memory: '256Mi' } } }), [set, set]);
  t.strictSame(agentResourcesEnvValue({ requests: {} }), '{}', 'empty lists are nothing set');
});
