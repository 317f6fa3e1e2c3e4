import type { KubeObject } from '@telepresence-ts/core';
import t from 'tap';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';
import { FakeKubeForCli } from '../fixtures/fake-kube-cli.js';

t.test('install applies, waits and reports; progress goes to stderr', async (t) => {
  const kube = new FakeKubeForCli();
  const res = await runCli(fakeEnv({ kube }), ['install', '--agent-image', 'me/agent:dev']);
  t.equal(res.code, 0, res.stderr);
  t.equal(kube.applied.length, 13);
  t.matchSnapshot(res.stdout, 'text');
  t.matchSnapshot(res.stderr, 'progress');
});

t.test('install -o json', async (t) => {
  const res = await runCli(fakeEnv({ kube: new FakeKubeForCli() }), ['install', '--manager-namespace', 'tp-x', '--no-wait', '-o', 'json']);
  const out = JSON.parse(res.stdout) as { namespace: string; images: unknown; applied: string[]; dryRun: boolean };
  t.equal(out.namespace, 'tp-x');
  t.strictSame(out.images, { manager: 'tp-local/traffic-manager:1.2.3', injector: 'tp-local/agent-injector:1.2.3', agent: 'tp-local/traffic-agent:1.2.3' });
  t.equal(out.applied.length, 13);
  t.equal(out.dryRun, false);
});

t.test('install --registry pulls all three images from there, tagged with the CLI version', async (t) => {
  const res = await runCli(fakeEnv({ kube: new FakeKubeForCli() }), ['install', '--registry', 'registry.example.com:5000/team/', '--no-wait', '-o', 'json']);
  t.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { images: unknown };
  t.strictSame(out.images, {
    manager: 'registry.example.com:5000/team/traffic-manager:1.2.3',
    injector: 'registry.example.com:5000/team/agent-injector:1.2.3',
    agent: 'registry.example.com:5000/team/traffic-agent:1.2.3',
  });
});

for (const [registry, why] of [
  ['https://registry.example.com/team', 'it has a scheme'],
  ['registry.example.com/team/traffic-agent:1.0', 'it has a tag or digest'],
  ['Registry Example', 'it is not a host[:port][/path] of lower-case names'],
] as const) {
  t.test(`install --registry ${registry}: refused before the cluster is touched`, async (t) => {
    const kube = new FakeKubeForCli();
    const res = await runCli(fakeEnv({ kube }), ['install', '--registry', registry]);
    t.equal(res.code, 2, 'a user error');
    t.match(res.stderr, `--registry "${registry}" is not an image registry: ${why}`);
    t.match(res.stderr, /hint: +give the host and path the images were pushed under/);
    t.equal(kube.applied.length, 0, 'nothing applied');
  });
}

/** The parts of install's objects these tests read. */
interface Deployment {
  spec?: { template: { spec?: { containers: Array<{ resources?: unknown; env?: Array<{ name: string; value?: string }> }>; nodeSelector?: unknown; tolerations?: unknown } } };
}
interface WebhookConfiguration {
  webhooks?: Array<{ failurePolicy?: string; timeoutSeconds?: number; namespaceSelector?: { matchExpressions?: unknown } }>;
}

/** Keeps the objects install applies, to look into them. */
class RecordingKube extends FakeKubeForCli {
  readonly objects: KubeObject[] = [];
  override async apply(obj: KubeObject): Promise<void> {
    this.objects.push(obj);
    await super.apply(obj);
  }
  find<T>(kind: string, name: string): T | undefined {
    return this.objects.find((o) => o.kind === kind && o.metadata?.name === name) as T | undefined;
  }
}

t.test('install with the chart\'s options as flags: the objects carry them, and -o json shows them', async (t) => {
  const kube = new RecordingKube();
  const res = await runCli(fakeEnv({ kube }), [
    'install',
    '--no-wait',
    '-o',
    'json',
    '--manager-requests',
    'cpu=100m,memory=64Mi',
    '--manager-limits',
    'memory=128Mi',
    '--injector-requests',
    'cpu=50m',
    '--node-selector',
    'kubernetes.io/os=linux',
    '--node-selector',
    'pool=tools',
    '--toleration',
    'dedicated=tools:NoSchedule',
    '--toleration',
    'spot:NoExecute',
    '--webhook-failure-policy',
    'Fail',
    '--webhook-timeout',
    '10',
    '--injectable-namespaces',
    'env in (dev,staging),!legacy',
    '--agent-requests',
    'memory=64Mi,cpu=50m',
    '--agent-limits',
    'memory=256Mi',
    '--agent-log-level',
    'debug',
  ]);
  t.equal(res.code, 0, res.stderr);
  const tolerations = [
    { key: 'dedicated', operator: 'Equal', value: 'tools', effect: 'NoSchedule' },
    { key: 'spot', operator: 'Exists', effect: 'NoExecute' },
  ];
  const nodeSelector = { 'kubernetes.io/os': 'linux', pool: 'tools' };
  const selector = { matchExpressions: [{ key: 'env', operator: 'In', values: ['dev', 'staging'] }, { key: 'legacy', operator: 'DoesNotExist' }] };
  const manager = kube.find<Deployment>('Deployment', 'traffic-manager')?.spec?.template.spec;
  t.strictSame(manager?.containers[0]?.resources, { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } }, "the traffic-manager's resources");
  t.strictSame(manager?.nodeSelector, nodeSelector);
  t.strictSame(manager?.tolerations, tolerations);
  const injector = kube.find<Deployment>('Deployment', 'agent-injector')?.spec?.template.spec;
  t.strictSame(injector?.containers[0]?.resources, { requests: { cpu: '50m' } }, "the agent-injector's resources");
  t.strictSame(injector?.nodeSelector, nodeSelector);
  t.strictSame(injector?.tolerations, tolerations);
  const hook = kube.find<WebhookConfiguration>('MutatingWebhookConfiguration', 'agent-injector-webhook-tp-system')?.webhooks?.[0];
  t.equal(hook?.failurePolicy, 'Fail');
  t.equal(hook?.timeoutSeconds, 10);
  t.strictSame(hook?.namespaceSelector?.matchExpressions, [
    { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'tp-system'] },
    ...selector.matchExpressions,
  ], 'the selector, after the namespaces never injected into');
  const agentResources = { requests: { memory: '64Mi', cpu: '50m' }, limits: { memory: '256Mi' } };
  for (const program of [manager, injector]) {
    const env = Object.fromEntries((program?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    t.equal(env['TP_AGENT_LOG_LEVEL'], 'debug', "the agents' log level, for the manager and the injector alike");
    t.strictSame(JSON.parse(env['TP_AGENT_RESOURCES'] ?? ''), agentResources, "the agents' resources, likewise");
  }
  const out = JSON.parse(res.stdout) as { options: unknown };
  t.strictSame(out.options, {
    webhookFailurePolicy: 'Fail',
    webhookTimeoutSeconds: 10,
    agentLogLevel: 'debug',
    managerResources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } },
    injectorResources: { requests: { cpu: '50m' } },
    agentResources,
    nodeSelector,
    tolerations,
    injectableNamespaces: selector,
  });
});

t.test("install -o json without those flags shows the webhook's and the agents' log level defaults only", async (t) => {
  const res = await runCli(fakeEnv({ kube: new FakeKubeForCli() }), ['install', '--no-wait', '-o', 'json']);
  t.strictSame((JSON.parse(res.stdout) as { options: unknown }).options, { webhookFailurePolicy: 'Ignore', webhookTimeoutSeconds: 5, agentLogLevel: 'info' });
});

t.test('a flag given twice: the last one counts, as with kubectl', async (t) => {
  const kube = new RecordingKube();
  const res = await runCli(fakeEnv({ kube }), ['install', '--no-wait', '--webhook-timeout', '3', '--webhook-timeout', '7', '--agent-log-level', 'debug', '--agent-log-level', 'warn']);
  t.equal(res.code, 0, res.stderr);
  t.equal(kube.find<WebhookConfiguration>('MutatingWebhookConfiguration', 'agent-injector-webhook-tp-system')?.webhooks?.[0]?.timeoutSeconds, 7);
  const env = kube.find<Deployment>('Deployment', 'traffic-manager')?.spec?.template.spec?.containers[0]?.env ?? [];
  t.equal(env.find((e) => e.name === 'TP_AGENT_LOG_LEVEL')?.value, 'warn');
});

for (const [args, message, hint] of [
  [['--manager-requests', 'mem=64Mi'], '--manager-requests "mem=64Mi": "mem" is not one of cpu, memory, ephemeral-storage', /--manager-requests cpu=100m,memory=128Mi/],
  [['--injector-requests', 'cpu=1', '--injector-limits', 'cpu=500m'], '--injector-requests cpu=1 is above --injector-limits cpu=500m', /lower the request or raise the limit/],
  [['--node-selector', 'linux'], '--node-selector "linux": "linux" has no "=value"', /--node-selector kubernetes.io\/os=linux/],
  [['--agent-requests', 'cpus=1'], '--agent-requests "cpus=1": "cpus" is not one of cpu, memory, ephemeral-storage', /--agent-requests cpu=100m,memory=128Mi/],
  [['--agent-requests', 'memory=1Gi', '--agent-limits', 'memory=512Mi'], '--agent-requests memory=1Gi is above --agent-limits memory=512Mi', /lower the request or raise the limit/],
  [['--agent-log-level', 'verbose'], '--agent-log-level "verbose": not a log level', /pass one of debug, info, warn, error/],
  [['--toleration', 'dedicated=tools:noschedule'], 'effects are case-sensitive: NoSchedule', /--toleration dedicated=tools:NoSchedule/],
  [['--webhook-failure-policy', 'Never'], '--webhook-failure-policy "Never": not a failure policy', /pass Ignore or Fail/],
  [['--webhook-timeout', '31'], '--webhook-timeout "31": outside the 1 to 30 seconds', /--webhook-timeout 10/],
  [['--injectable-namespaces', 'kubernetes.io/metadata.name=tp-x', '--manager-namespace', 'tp-x'], 'selects namespace tp-x, where agents are never injected', /kube-system and tp-x are left out/],
  [['--injectable-namespaces', 'team in (a,b'], 'its parentheses do not pair up', /kubectl -l/],
] as const) {
  t.test(`install ${args.join(' ')}: refused before the cluster is touched`, async (t) => {
    const kube = new FakeKubeForCli();
    const res = await runCli(fakeEnv({ kube }), ['install', ...args]);
    t.equal(res.code, 2, 'a user error');
    t.match(res.stderr, message);
    t.match(res.stderr, hint);
    t.equal(kube.applied.length, 0, 'nothing applied');
  });
}
