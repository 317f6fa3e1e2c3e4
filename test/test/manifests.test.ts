import t from 'tap';
import {
  ECHO_IMAGE,
  clusterIpService,
  echoDeployment,
  echoPod,
  mutatingWebhookConfiguration,
  nodeScriptPod,
} from '../src/manifests.js';

interface Container {
  image: string;
  imagePullPolicy: string;
}
const containersOf = (o: object): Container[] => {
  const obj = o as { spec: { containers?: Container[]; template?: { spec: { containers: Container[] } } } };
  return obj.spec.containers ?? obj.spec.template?.spec.containers ?? [];
};

const workloads: Array<[string, object]> = [
  ['echoDeployment', echoDeployment('ns', 'echo', 2)],
  ['echoPod', echoPod('ns', 'p')],
  ['nodeScriptPod', nodeScriptPod('ns', 'probe', 'console.log(1)', { A: 'b' })],
];
for (const [name, obj] of workloads) {
  t.test(`${name} uses the local echo image and never pulls`, async (t) => {
    const cs = containersOf(obj);
    t.ok(cs.length > 0);
    for (const c of cs) {
      t.equal(c.image, ECHO_IMAGE);
      t.equal(c.imagePullPolicy, 'IfNotPresent');
    }
  });
}

t.test('echoDeployment selects its own pods and probes readiness on /healthz', async (t) => {
  t.match(echoDeployment('ns1', 'echo', 2), {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'echo', namespace: 'ns1' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'echo' } },
      template: {
        metadata: { labels: { app: 'echo' } },
        spec: { containers: [{ ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 8080 } } }] },
      },
    },
  });
});

t.test('clusterIpService maps its port onto the echo port', async (t) => {
  t.match(clusterIpService('ns1', 'echo', 80), {
    kind: 'Service',
    metadata: { name: 'echo', namespace: 'ns1' },
    spec: { type: 'ClusterIP', selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] },
  });
});

t.test('nodeScriptPod runs the script once with the env', async (t) => {
  t.match(nodeScriptPod('ns1', 'probe', 'console.log(1)', { A: 'b' }), {
    kind: 'Pod',
    metadata: { name: 'probe', namespace: 'ns1' },
    spec: {
      restartPolicy: 'Never',
      containers: [{ command: ['node', '-e', 'console.log(1)'], env: [{ name: 'A', value: 'b' }] }],
    },
  });
});

t.test('mutatingWebhookConfiguration only matches the one namespace', async (t) => {
  const cfg = mutatingWebhookConfiguration({
    name: 'tp-smoke-abc',
    url: 'https://127.0.0.1:4443/mutate',
    caBundlePem: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n',
    namespace: 'tp-smoke-abc',
    objectSelector: { matchLabels: { 'tp-smoke/webhook': 'abc' } },
    failurePolicy: 'Fail',
  }) as { webhooks: Array<Record<string, unknown>> };
  t.equal(cfg.webhooks.length, 1);
  const w = cfg.webhooks[0] ?? {};
  t.same(w['namespaceSelector'], { matchLabels: { 'kubernetes.io/metadata.name': 'tp-smoke-abc' } });
  t.equal(
    Buffer.from((w['clientConfig'] as { caBundle: string }).caBundle, 'base64').toString(),
    '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n',
    'caBundle is the base64 of the PEM',
  );
  t.match(w, {
    name: 'tp-smoke-abc.webhooks.telepresence-ts.test',
    clientConfig: { url: 'https://127.0.0.1:4443/mutate' },
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    objectSelector: { matchLabels: { 'tp-smoke/webhook': 'abc' } },
    failurePolicy: 'Fail',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    timeoutSeconds: 5,
  });
});
