import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateServingCert, type ServingCert } from '../../../test/src/certs.js';
import { admit, type AdmissionRequest, type Decision } from '../../src/injector/admit.js';
import { injectAgent } from '../../src/injector/inject.js';
import { applyJsonPatch, jsonEqual } from '../../src/injector/patch.js';
import { startWebhookServer, type WebhookOptions, type WebhookServer } from '../../src/injector/webhook.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { fakeKube } from './fake-kube.js';
import { config, container, intercept, pod } from './samples.js';

const webConfig = config({ app: [intercept('http', 8080, 9901)] });
const webPod = pod([container('app', ['http:8080'])]);
const kube = fakeKube({
  entries: { 'apps/web': serializeAgentConfig(webConfig) },
  owners: { 'apps/web-5d8f7c6b9': { kind: 'Deployment', name: 'web' } },
});

interface Reply {
  status: number;
  body: string;
}

/** One HTTPS call that trusts only the test CA (as the API server trusts only the caBundle). */
function call(server: WebhookServer, ca: string, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: server.port, method, path, ca, agent: false, timeout: 10_000, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function review(object: unknown, extra: Partial<AdmissionRequest> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'uid-42', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'apps', operation: 'CREATE', object, ...extra },
  });
}

interface ReviewResponse {
  response: { uid: string; allowed: boolean; patchType?: string; patch?: string };
}

let cert: ServingCert;
const lines: string[] = [];
const log = createLogger('agent-injector', 'info', (l) => lines.push(l));

t.before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tp-injector-test-'));
  try {
    cert = await generateServingCert({ dir, hosts: ['127.0.0.1'] });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

async function start(t: Test, extra: Partial<WebhookOptions> = {}): Promise<WebhookServer> {
  const server = await startWebhookServer({
    port: 0,
    host: '127.0.0.1',
    tls: { cert: cert.certPem, key: cert.keyPem },
    admit: (r) => admit(r, { kube, managerNamespace: 'tp-system' }),
    log,
    ...extra,
  });
  t.teardown(() => server.close());
  return server;
}

t.test('a pod creation is answered with the patch that injects the agent', async (t) => {
  const server = await start(t);
  lines.length = 0;
  const reply = await call(server, cert.caCertPem, 'POST', '/agent-injector/mutate', review(webPod));
  t.equal(reply.status, 200);
  const { response } = JSON.parse(reply.body) as ReviewResponse;
  t.equal(response.uid, 'uid-42', 'echoes the uid');
  t.equal(response.allowed, true);
  t.equal(response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as Parameters<typeof applyJsonPatch>[1];
  t.ok(jsonEqual(applyJsonPatch(webPod, ops), injectAgent(webPod, webConfig)), 'the patch injects the agent');
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(logged, [{ level: 'info', msg: 'injected agent', pod: 'apps/web-5d8f7c6b9-*', workload: 'Deployment/web', outcome: 'injected' }]);
});

t.test('a skipped pod is allowed without a patch, and the decision is logged', async (t) => {
  const server = await start(t);
  lines.length = 0;
  const reply = await call(server, cert.caCertPem, 'POST', '/agent-injector/mutate', review(webPod, { namespace: 'kube-system' }));
  const { response } = JSON.parse(reply.body) as ReviewResponse;
  t.strictSame(response, { uid: 'uid-42', allowed: true });
  t.match(JSON.parse(lines[0] ?? '{}'), { level: 'info', msg: 'admitted unchanged', outcome: 'skipped', reason: /kube-system/ });
});

t.test('a slow decision is cut off: allowed without a patch, in time', async (t) => {
  const never = new Promise<Decision>(() => undefined);
  const server = await start(t, { admit: () => never, deadlineMs: 200 });
  lines.length = 0;
  const started = Date.now();
  const reply = await call(server, cert.caCertPem, 'POST', '/agent-injector/mutate', review(webPod));
  t.ok(Date.now() - started < 2000, 'answered within the deadline');
  t.strictSame((JSON.parse(reply.body) as ReviewResponse).response, { uid: 'uid-42', allowed: true });
  t.match(JSON.parse(lines[0] ?? '{}'), { level: 'warn', outcome: 'failed', reason: 'no decision within 200 ms' });
});

t.test('requests that are not admission reviews', async (t) => {
  const server = await start(t);
  const cases: ReadonlyArray<{ method: string; path: string; body?: string; status: number }> = [
    { method: 'POST', path: '/agent-injector/mutate', body: 'not json', status: 400 },
    { method: 'POST', path: '/agent-injector/mutate', body: '{"kind":"Pod"}', status: 400 },
    { method: 'POST', path: '/agent-injector/mutate', body: '{"kind":"AdmissionReview","request":{}}', status: 400 },
    { method: 'GET', path: '/agent-injector/mutate', status: 405 },
    { method: 'POST', path: '/mutate', body: review(webPod), status: 404 },
  ];
  for (const c of cases) {
    t.equal((await call(server, cert.caCertPem, c.method, c.path, c.body)).status, c.status, `${c.method} ${c.path} ${c.body ?? ''}`);
  }
});

t.test('/healthz is 503 until the ConfigMap cache is ready', async (t) => {
  let ready = false;
  const server = await start(t, { ready: () => ready });
  t.equal((await call(server, cert.caCertPem, 'GET', '/healthz')).status, 503);
  ready = true;
  t.strictSame(await call(server, cert.caCertPem, 'GET', '/healthz'), { status: 200, body: 'ok\n' });
});

t.test('a client that does not trust the CA is refused', async (t) => {
  const server = await start(t);
  await t.rejects(call(server, '', 'GET', '/healthz'), { code: /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/ });
});
