/**
 * The Helm chart in cluster/chart/: it is what the generator makes now, helm 4 and helm 3 lint it,
 * and `helm template` renders exactly the objects `install` applies for the same options (only the
 * certificates, made at render time, differ), with a certificate the injector can serve and the
 * API server can trust, plus one object of its own: the pre-delete hook that removes the agents
 * before `helm uninstall` deletes the rest. Bad values fail with a message naming them. Needs Go
 * (helm is built from the Go module proxy, once); no cluster.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import {
  defaultImages,
  neverInjectedSelected,
  parseAgentLogLevel,
  parseInstallFlags,
  parseWebhookFailurePolicy,
  parseWebhookTimeout,
  REMOVE_AGENTS_WAIT_SECONDS,
  RESOURCE_NAMES,
} from '@telepresence-ts/core';
import { injectorDnsNames } from '@telepresence-ts/core/install-certs';
import {
  baseManifests,
  injectorDeployment,
  injectorTlsSecret,
  installLabels,
  managerDeployment,
  webhookConfiguration,
  type InstallOptions,
} from '@telepresence-ts/core/install-manifests';
import { chartFiles, REMOVE_AGENTS_HOOK_DEADLINE_SECONDS, TLS_NOT_AFTER_ANNOTATION } from '../../cluster/src/chart/chart-gen.js';
import { parseInjectorEnv } from '../../cluster/src/injector/env.js';
import { parseManagerEnv } from '../../cluster/src/manager/env.js';
import { processRunner } from '../src/process-runner.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CHART = join(ROOT, 'cluster', 'chart');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const NAMESPACE = 'tp-system';

t.setTimeout(10 * 60_000);

type Obj = Record<string, unknown> & { kind?: string; metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> } };

const keyOf = (o: Obj): string => `${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** What install applies for these options, by kind/namespace/name. */
function installObjects(o: InstallOptions): Map<string, Obj> {
  const tls = { caCert: 'CA', cert: 'CERT', key: 'KEY' };
  const objs = [...baseManifests(o), injectorTlsSecret(o, tls), managerDeployment(o), injectorDeployment(o), webhookConfiguration(o, tls.caCert)];
  return new Map(objs.map((obj) => [keyOf(obj as Obj), JSON.parse(JSON.stringify(obj)) as Obj]));
}

const HOOK = 'traffic-manager-remove-agents';

/**
 * The one object the chart has and install has not: the pre-delete hook Job that runs the
 * traffic-manager image's `remove-agents` mode (install's `uninstall --everything` removes the
 * agents itself). It is written out here as it must be, rather than taken from the generator.
 */
function chartOnlyObjects(o: InstallOptions): Map<string, Obj> {
  const labels = installLabels(o.namespace, HOOK);
  const hook = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: HOOK,
      namespace: o.namespace,
      labels,
      annotations: { 'helm.sh/hook': 'pre-delete', 'helm.sh/hook-weight': '0', 'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded' },
    },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: REMOVE_AGENTS_HOOK_DEADLINE_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: RESOURCE_NAMES.manager,
          restartPolicy: 'Never',
          containers: [
            { name: HOOK, image: o.managerImage, args: ['remove-agents'], imagePullPolicy: 'IfNotPresent', ...(o.managerResources === undefined ? {} : { resources: o.managerResources }) },
          ],
          ...(o.nodeSelector === undefined ? {} : { nodeSelector: o.nodeSelector }),
          ...(o.tolerations === undefined ? {} : { tolerations: o.tolerations }),
        },
      },
    },
  };
  return new Map([[keyOf(hook), JSON.parse(JSON.stringify(hook)) as Obj]]);
}

/** What `helm template` renders for these options: install's objects and the chart's own. */
function chartObjects(o: InstallOptions): Map<string, Obj> {
  return new Map([...installObjects(o), ...chartOnlyObjects(o)]);
}

interface Render {
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly objects: Map<string, Obj>;
}

async function helmTemplate(helm: string, args: string[], chart = CHART): Promise<Render> {
  const r = await processRunner.run(helm, ['template', 'tp', chart, '--namespace', NAMESPACE, ...args], { timeoutMs: 120_000 });
  const objects = new Map<string, Obj>();
  if (r.exitCode === 0) {
    for (const doc of parseAllDocuments(r.stdout)) {
      const obj = doc.toJS() as Obj | null;
      if (obj !== null) objects.set(keyOf(obj), obj);
    }
  }
  return { exitCode: r.exitCode, stderr: r.stderr, objects };
}

/** The generated parts, taken out of a rendered object (and install's) so that the rest compares exactly. */
function withoutCertificates(o: Obj): Obj {
  const copy = JSON.parse(JSON.stringify(o)) as Obj;
  if (copy.kind === 'Secret') {
    delete copy['stringData'];
    if (copy.metadata?.annotations !== undefined) {
      delete copy.metadata.annotations[TLS_NOT_AFTER_ANNOTATION];
      if (Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations;
    }
  }
  if (copy.kind === 'MutatingWebhookConfiguration') {
    for (const hook of copy['webhooks'] as Array<{ clientConfig: { caBundle?: string } }>) delete hook.clientConfig.caBundle;
  }
  return copy;
}

function sameObjects(t: Test, rendered: Map<string, Obj>, expected: Map<string, Obj>): void {
  t.strictSame([...rendered.keys()].sort(), [...expected.keys()].sort(), 'the same objects, by kind/namespace/name');
  for (const [key, want] of expected) {
    const got = rendered.get(key);
    if (got !== undefined) t.strictSame(withoutCertificates(got), withoutCertificates(want), `${key} is install's`);
  }
}

const helms = (await processRunner.run('bash', [join(ROOT, 'scripts', 'helm-tools.sh')], { timeoutMs: 900_000 })).stdout.trim().split('\n');

t.test('the committed chart is what the generator makes', async (t) => {
  const want = chartFiles(VERSION);
  const listed = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listed(join(dir, e.name)) : [relative(CHART, join(dir, e.name))]));
  const stale = 'cluster/chart/ is stale: regenerate it with `npm run chart`';
  t.strictSame(listed(CHART).sort(), Object.keys(want).sort(), stale);
  for (const [path, text] of Object.entries(want)) {
    t.equal(readFileSync(join(CHART, path), 'utf8'), text, `${path}: ${stale}`);
  }
  t.match(want['Chart.yaml'], `version: ${VERSION}\nappVersion: "${VERSION}"\n`, 'version and appVersion are the CLI\'s');
});

const installDefaults = ((): InstallOptions => {
  const images = defaultImages(VERSION);
  return { namespace: NAMESPACE, managerImage: images.manager, injectorImage: images.injector, agentImage: images.agent };
})();

const custom = {
  registry: 'registry.example.com:5000/team/',
  tag: '1.2.3',
  createNamespace: false,
  manager: { resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } } },
  injector: { resources: { requests: { cpu: '50m' } } },
  agent: { logLevel: 'debug', resources: { requests: { memory: '64Mi', cpu: '50m' }, limits: { memory: '256Mi' } } },
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'tools', effect: 'NoSchedule' }],
  webhook: { failurePolicy: 'Fail', timeoutSeconds: 10 },
  namespaceSelector: { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] },
} as const;

const installCustom = ((): InstallOptions => {
  const images = defaultImages(custom.tag, custom.registry);
  return {
    namespace: NAMESPACE,
    managerImage: images.manager,
    injectorImage: images.injector,
    agentImage: images.agent,
    managerResources: custom.manager.resources,
    injectorResources: custom.injector.resources,
    agentLogLevel: custom.agent.logLevel,
    agentResources: custom.agent.resources,
    nodeSelector: custom.nodeSelector,
    tolerations: [...custom.tolerations],
    webhookFailurePolicy: custom.webhook.failurePolicy,
    webhookTimeoutSeconds: custom.webhook.timeoutSeconds,
    injectableNamespaces: { matchLabels: custom.namespaceSelector.matchLabels, matchExpressions: [{ ...custom.namespaceSelector.matchExpressions[0], values: ['dev'] }] },
  };
})();

/** Namespace selectors the chart refuses (by the name of the namespace they ask for), and so does install. */
const neverSelectors = {
  'by-label': { selector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } }, namespace: NAMESPACE },
  'by-expression': { selector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['kube-system'] }] }, namespace: 'kube-system' },
};

t.test("install's flags refuse the webhook values and selectors the chart refuses, and take its custom ones", async (t) => {
  for (const [name, { selector, namespace }] of Object.entries(neverSelectors)) {
    t.equal(neverInjectedSelected(selector, NAMESPACE), namespace, `a selector ${name} of ${namespace}`);
  }
  t.equal(neverInjectedSelected(installCustom.injectableNamespaces ?? {}, NAMESPACE), undefined, 'the custom selector');
  for (const seconds of ['31', '0']) {
    t.throws(() => parseWebhookTimeout(seconds), { code: 'bad-webhook-timeout' }, `a timeout of ${seconds} s`);
  }
  t.equal(parseWebhookTimeout(String(custom.webhook.timeoutSeconds)), custom.webhook.timeoutSeconds, 'the custom timeout');
  t.throws(() => parseWebhookFailurePolicy('Never'), { code: 'bad-webhook-failure-policy' }, 'an unknown failurePolicy');
  t.equal(parseAgentLogLevel(custom.agent.logLevel), custom.agent.logLevel, "the custom agents' log level");
  t.throws(() => parseAgentLogLevel('verbose'), { code: 'bad-log-level' }, "an unknown agents' log level");
  t.strictSame(
    parseInstallFlags({ agentRequests: ['memory=64Mi,cpu=50m'], agentLimits: ['memory=256Mi'] }, NAMESPACE).agentResources,
    custom.agent.resources,
    "the custom agents' resources, as --agent-requests and --agent-limits give them",
  );
  for (const [requests, limits] of [[['gpu=1'], []], [['memory=128m'], []], [['cpu=1'], ['cpu=500m']]]) {
    t.throws(() => parseInstallFlags({ agentRequests: requests, agentLimits: limits }, NAMESPACE), { code: 'bad-resources' }, `agent resources ${String(requests)} ${String(limits)}`);
  }
  t.equal(parseWebhookFailurePolicy(custom.webhook.failurePolicy), custom.webhook.failurePolicy, 'the custom failurePolicy');
});

const work = mkdtempSync(join(tmpdir(), 'tp-chart-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const valuesFile = (name: string, values: unknown): string => {
  const path = join(work, `${name}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
};

for (const helm of helms) {
  const major = (/helm-v(\d+)\./.exec(helm) ?? [])[1] ?? '?';

  t.test(`helm ${major}`, async (t) => {
    t.test('lints the chart', async (t) => {
      const r = await processRunner.run(helm, ['lint', CHART, '--strict', '--namespace', NAMESPACE], { timeoutMs: 120_000 });
      t.equal(r.exitCode, 0, `helm lint: ${r.stdout}${r.stderr}`);
    });

    t.test("default values render install's objects, all but the namespace, which helm install --create-namespace makes", async (t) => {
      const r = await helmTemplate(helm, []);
      t.equal(r.exitCode, 0, r.stderr);
      const want = chartObjects(installDefaults);
      want.delete(`Namespace//${NAMESPACE}`);
      sameObjects(t, r.objects, want);
    });

    t.test("createNamespace=true renders install's namespace too, for tools that apply the rendered objects", async (t) => {
      const r = await helmTemplate(helm, ['--set', 'createNamespace=true']);
      t.equal(r.exitCode, 0, r.stderr);
      sameObjects(t, r.objects, chartObjects(installDefaults));
    });

    t.test("other values render install's objects for the same options", async (t) => {
      const r = await helmTemplate(helm, ['--values', valuesFile('custom', custom)]);
      t.equal(r.exitCode, 0, r.stderr);
      const want = chartObjects(installCustom);
      want.delete(`Namespace//${NAMESPACE}`);
      sameObjects(t, r.objects, want);
      const manager = r.objects.get(`Deployment/${NAMESPACE}/${RESOURCE_NAMES.manager}`) as { spec: { template: { spec: { containers: Array<{ image: string }> } } } } | undefined;
      t.equal(manager?.spec.template.spec.containers[0]?.image, 'registry.example.com:5000/team/traffic-manager:1.2.3', 'the registry and tag name the image');
      const hook = (r.objects.get(`MutatingWebhookConfiguration//agent-injector-webhook-${NAMESPACE}`) as { webhooks: Array<Record<string, unknown>> } | undefined)?.webhooks[0];
      t.match(hook, {
        failurePolicy: 'Fail',
        timeoutSeconds: 10,
        namespaceSelector: { matchLabels: { team: 'a' }, matchExpressions: [{ operator: 'NotIn', values: ['kube-system', NAMESPACE] }, { key: 'env', values: ['dev'] }] },
      }, 'the webhook settings and the namespace selector, which still leaves out kube-system and the release namespace');
    });

    t.test("the agents' settings reach the traffic-manager and the agent-injector alike, which build the same configurations from them", async (t) => {
      type Env = Array<{ name: string; value?: string }>;
      const envOf = (r: Render, name: string): Record<string, string> => {
        const d = r.objects.get(`Deployment/${NAMESPACE}/${name}`) as { spec: { template: { spec: { containers: Array<{ env: Env }> } } } } | undefined;
        return Object.fromEntries((d?.spec.template.spec.containers[0]?.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
      };
      const cases = [
        { name: 'default values', args: [], logLevel: 'info', resources: undefined },
        { name: 'other values', args: ['--values', valuesFile('custom', custom)], logLevel: 'debug', resources: { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } } },
        // --set makes a number of a bare quantity; the programs read it as the quantity.
        { name: 'a number from --set', args: ['--set', 'agent.resources.limits.cpu=2'], logLevel: 'info', resources: { limits: { cpu: '2' } } },
      ];
      for (const c of cases) {
        const r = await helmTemplate(helm, c.args);
        t.equal(r.exitCode, 0, r.stderr);
        const manager = parseManagerEnv(envOf(r, RESOURCE_NAMES.manager));
        const injector = parseInjectorEnv(envOf(r, RESOURCE_NAMES.injector));
        t.equal(manager.agentLogLevel, c.logLevel, `${c.name}: the agents' log level`);
        t.strictSame(manager.agentResources, c.resources, `${c.name}: the agents' resources`);
        t.strictSame(injector.build, { agentImage: manager.agentImage, managerHost: manager.managerHost, managerPort: manager.port, logLevel: manager.agentLogLevel, ...(c.resources === undefined ? {} : { resources: c.resources }) }, `${c.name}: the injector builds as the manager does`);
      }
    });

    t.test("the one object install has not: the pre-delete hook runs the traffic-manager's image and pod with remove-agents", async (t) => {
      type PodTemplate = { spec: { template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> & { containers: Array<Record<string, unknown>> } } } };
      const cases = [
        { name: 'default values', args: [], image: installDefaults.managerImage, placement: {} },
        {
          name: 'other values',
          args: ['--values', valuesFile('custom', custom)],
          image: 'registry.example.com:5000/team/traffic-manager:1.2.3',
          placement: { nodeSelector: custom.nodeSelector, tolerations: custom.tolerations },
        },
      ];
      for (const c of cases) {
        t.test(c.name, async (t) => {
          const r = await helmTemplate(helm, c.args);
          t.equal(r.exitCode, 0, r.stderr);
          const installed = new Set(installObjects(installDefaults).keys());
          t.strictSame([...r.objects.keys()].filter((k) => !installed.has(k)), [`Job/${NAMESPACE}/${HOOK}`], 'the hook Job and nothing else');
          const job = r.objects.get(`Job/${NAMESPACE}/${HOOK}`) as (Obj & PodTemplate) | undefined;
          const manager = r.objects.get(`Deployment/${NAMESPACE}/${RESOURCE_NAMES.manager}`) as (Obj & PodTemplate) | undefined;
          const [hook] = job?.spec.template.spec.containers ?? [];
          const [server] = manager?.spec.template.spec.containers ?? [];
          t.match(job?.metadata?.annotations, { 'helm.sh/hook': 'pre-delete', 'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded' }, 'a pre-delete hook');
          t.equal(hook?.['image'], c.image, 'the registry and tag name the image');
          t.equal(hook?.['image'], server?.['image'], "the traffic-manager's image");
          t.strictSame(hook?.['args'], ['remove-agents'], 'its remove-agents mode');
          for (const field of ['resources', 'securityContext']) t.strictSame(hook?.[field], server?.[field], `the traffic-manager's container ${field}`);
          for (const field of ['serviceAccountName', 'nodeSelector', 'tolerations', 'securityContext']) {
            t.strictSame(job?.spec.template.spec[field], manager?.spec.template.spec[field], `the traffic-manager's pod ${field}`);
          }
          const placement = { nodeSelector: job?.spec.template.spec['nodeSelector'], tolerations: job?.spec.template.spec['tolerations'] };
          t.strictSame(JSON.parse(JSON.stringify(placement)), c.placement, "the values' nodeSelector and tolerations");
          t.not(job?.spec.template.metadata.labels['app.kubernetes.io/name'], RESOURCE_NAMES.manager, "the traffic-manager's Service does not select its pod");
        });
      }
      t.ok(REMOVE_AGENTS_HOOK_DEADLINE_SECONDS > REMOVE_AGENTS_WAIT_SECONDS, `its deadline (${REMOVE_AGENTS_HOOK_DEADLINE_SECONDS} s) leaves the mode its whole wait (${REMOVE_AGENTS_WAIT_SECONDS} s)`);
    });

    t.test('the certificate: the injector Service\'s names, signed by the caBundle\'s CA', async (t) => {
      const r = await helmTemplate(helm, []);
      const secret = r.objects.get(`Secret/${NAMESPACE}/${RESOURCE_NAMES.injectorTlsSecret}`) as { stringData: Record<string, string>; metadata: { annotations: Record<string, string> } };
      const hook = (r.objects.get(`MutatingWebhookConfiguration//agent-injector-webhook-${NAMESPACE}`) as { webhooks: Array<{ clientConfig: { caBundle: string } }> }).webhooks[0];
      const caPem = secret.stringData['ca.crt'] ?? '';
      t.equal(Buffer.from(hook?.clientConfig.caBundle ?? '', 'base64').toString('utf8'), caPem, 'the caBundle is the Secret\'s CA');
      const ca = new X509Certificate(caPem);
      const cert = new X509Certificate(secret.stringData['tls.crt'] ?? '');
      t.ok(ca.ca, 'the CA is a CA');
      t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'the serving certificate is signed by it');
      t.ok(cert.checkPrivateKey(createPrivateKey(secret.stringData['tls.key'] ?? '')), 'and its key is the Secret\'s');
      t.strictSame(
        (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^DNS:/, '')),
        injectorDnsNames(RESOURCE_NAMES.injector, NAMESPACE),
        'its names are those install\'s certificate has',
      );
      const notAfter = Number(secret.metadata.annotations[TLS_NOT_AFTER_ANNOTATION]);
      t.ok(Math.abs(notAfter * 1000 - Date.parse(cert.validTo)) < 5 * 60_000, `the Secret records the certificate's expiry (${cert.validTo})`);
    });

    t.test('an upgrade keeps certificates valid for more than 30 days and replaces the others', async (t) => {
      // lookup finds nothing without a cluster: the decision is rendered here with made-up Secrets.
      const chart = join(work, `chart-${major}`);
      cpSync(CHART, chart, { recursive: true });
      const secret = (days: number | undefined): string =>
        `(dict "data" (dict "ca.crt" ("CA" | b64enc) "tls.crt" ("CERT" | b64enc) "tls.key" ("KEY" | b64enc)) "metadata" (dict "annotations" (dict ${
          days === undefined ? '' : `"${TLS_NOT_AFTER_ANNOTATION}" (toString (add (now | unixEpoch | int64) ${days * 86400}))`
        })))`;
      const cases = { valid: secret(60), expiring: secret(10), expired: secret(-1), unannotated: secret(undefined) };
      writeFileSync(
        join(chart, 'templates', 'tls-check.yaml'),
        [
          'apiVersion: v1',
          'kind: ConfigMap',
          'metadata:',
          '  name: tls-check',
          'data:',
          ...Object.entries(cases).map(([name, s]) => `  ${name}: {{ (include "telepresence-ts.tls" (dict "root" . "existing" ${s}) | fromYaml).cert | quote }}`),
        ].join('\n'),
      );
      const r = await processRunner.run(helm, ['template', 'tp', chart, '--namespace', NAMESPACE, '--show-only', 'templates/tls-check.yaml'], { timeoutMs: 120_000 });
      t.equal(r.exitCode, 0, r.stderr);
      const data = (parseAllDocuments(r.stdout)[0]?.toJS() as { data: Record<string, string> }).data;
      t.equal(data['valid'], 'CERT', 'valid for 60 more days: kept');
      for (const name of ['expiring', 'expired', 'unannotated']) {
        t.match(data[name], /^-----BEGIN CERTIFICATE-----/, `${name}: a new certificate`);
      }
    });

    t.test('bad values fail with a message naming them', async (t) => {
      const bad: Array<[string, string[], RegExp]> = [
        ['an empty tag', ['--set-string', 'tag='], /tag is empty: leave it unset/],
        ['a timeout over 30 s', ['--set', 'webhook.timeoutSeconds=31'], /webhook\.timeoutSeconds is 31, above the API server's maximum of 30: set it to 1 to 30/],
        ['a timeout of 0', ['--set', 'webhook.timeoutSeconds=0'], /timeoutSeconds/],
        ['an unknown failurePolicy', ['--set', 'webhook.failurePolicy=Never'], /failurePolicy/],
        ['a registry with a scheme', ['--set', 'registry=https://registry.example.com'], /registry/],
        ['a misspelt value', ['--set', 'webhook.timeout=3'], /timeout/],
        ['an unknown agent log level', ['--set', 'agent.logLevel=verbose'], /agent.*logLevel/],
        ['an agent resource other than cpu, memory and ephemeral-storage', ['--set-string', 'agent.resources.limits.gpu=1'], /agent.*resources.*limits/],
        ['an agent quantity that is none', ['--set-string', 'agent.resources.requests.memory=64MB'], /agent.*resources.*requests.*memory/],
        ['agent claims', ['--values', valuesFile('claims', { agent: { resources: { claims: [] } } })], /agent.*resources/],
        [
          'a selector of the release namespace by label',
          ['--values', valuesFile('by-label', { namespaceSelector: neverSelectors['by-label'].selector })],
          new RegExp(`namespaceSelector.matchLabels selects namespace ${NAMESPACE}, where agents are never injected`),
        ],
        [
          'a selector requiring kube-system',
          ['--values', valuesFile('by-expression', { namespaceSelector: neverSelectors['by-expression'].selector })],
          /namespaceSelector.matchExpressions requires namespace kube-system, where agents are never injected/,
        ],
      ];
      for (const [name, args, message] of bad) {
        const r = await helmTemplate(helm, args);
        t.not(r.exitCode, 0, `${name} fails`);
        t.match(r.stderr, message, `${name}: ${r.stderr.trim()}`);
      }
    });
  });
}
