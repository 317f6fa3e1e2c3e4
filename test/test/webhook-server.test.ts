import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateServingCert, type ServingCert } from '../src/certs.js';
import {
  addLabelPatch,
  admissionResponse,
  escapeJsonPointerSegment,
  startWebhookServer,
  type AdmissionRequest,
  type AdmissionReview,
  type JsonPatchOperation,
  type WebhookServer,
} from '../src/webhook-server.js';

const pointerCases: Array<[string, string]> = [
  ['app', 'app'],
  ['tp-smoke/mutated', 'tp-smoke~1mutated'],
  ['a~b/c', 'a~0b~1c'],
];
for (const [input, want] of pointerCases) {
  t.test(`escapeJsonPointerSegment ${input}`, async (t) => {
    t.equal(escapeJsonPointerSegment(input), want);
  });
}

const labelCases: Array<{ name: string; object: unknown; want: JsonPatchOperation[] }> = [
  {
    name: 'no labels map: add it whole',
    object: { metadata: { name: 'p' } },
    want: [{ op: 'add', path: '/metadata/labels', value: { 'tp-smoke/mutated': 'true' } }],
  },
  {
    name: 'null labels map: add it whole',
    object: { metadata: { labels: null } },
    want: [{ op: 'add', path: '/metadata/labels', value: { 'tp-smoke/mutated': 'true' } }],
  },
  {
    name: 'existing labels: add the key, escaped',
    object: { metadata: { labels: { app: 'echo' } } },
    want: [{ op: 'add', path: '/metadata/labels/tp-smoke~1mutated', value: 'true' }],
  },
  {
    name: 'existing different value: add replaces it',
    object: { metadata: { labels: { 'tp-smoke/mutated': 'false' } } },
    want: [{ op: 'add', path: '/metadata/labels/tp-smoke~1mutated', value: 'true' }],
  },
  {
    name: 'already labelled: empty patch (a second pass changes nothing)',
    object: { metadata: { labels: { 'tp-smoke/mutated': 'true' } } },
    want: [],
  },
];
for (const c of labelCases) {
  t.test(`addLabelPatch: ${c.name}`, async (t) => {
    t.same(addLabelPatch(c.object, 'tp-smoke/mutated', 'true'), c.want);
  });
}

const podRequest: AdmissionRequest = {
  uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
  kind: { group: '', version: 'v1', kind: 'Pod' },
  resource: { group: '', version: 'v1', resource: 'pods' },
  namespace: 'tp-smoke-abc',
  operation: 'CREATE',
  object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mutated', labels: { app: 'x' } } },
  dryRun: false,
};

t.test('admissionResponse: allowed with a patch', async (t) => {
  const patch: JsonPatchOperation[] = [{ op: 'add', path: '/metadata/labels/a', value: 'b' }];
  const review = admissionResponse(podRequest, { allowed: true, patch });
  t.same(review, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: podRequest.uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    },
  });
});

t.test('admissionResponse: an empty patch is left out', async (t) => {
  t.same(admissionResponse(podRequest, { allowed: true, patch: [] }).response, { uid: podRequest.uid, allowed: true });
});

t.test('admissionResponse: a denial carries its message and no patch', async (t) => {
  t.same(admissionResponse(podRequest, { allowed: false, message: 'no', patch: [{ op: 'remove', path: '/x' }] }).response, {
    uid: podRequest.uid,
    allowed: false,
    status: { code: 403, message: 'no' },
  });
});

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** POSTs over TLS, verifying the server against our CA (so the certificate chain is tested too). */
function post(server: WebhookServer, caPem: string, path: string, body: string): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      { host: server.host, port: server.port, path, method: 'POST', ca: caPem, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no response within 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

t.test('a real TLS server on 127.0.0.1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tp-webhook-test-'));
  let tls: ServingCert;
  try {
    tls = await generateServingCert({ dir, hosts: ['127.0.0.1'] });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const server = await startWebhookServer({
    host: '127.0.0.1',
    tls,
    admit: (req) => {
      if ((req.object as { metadata?: { name?: string } }).metadata?.name === 'explode') throw new Error('kaboom');
      return { allowed: true, patch: addLabelPatch(req.object, 'tp-smoke/mutated', 'true') };
    },
  });
  t.teardown(() => server.close());
  t.match(server.url, /^https:\/\/127\.0\.0\.1:\d+\/mutate$/);
  t.not(server.port, 0, 'listening on a real port');

  t.test('answers an AdmissionReview with a base64 JSONPatch and records the request', async (t) => {
    const before = server.requests.length;
    const review: AdmissionReview = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podRequest };
    const reply = await post(server, tls.caCertPem, '/mutate', JSON.stringify(review));
    t.equal(reply.status, 200);
    const answer = JSON.parse(reply.body) as AdmissionReview;
    t.equal(answer.apiVersion, 'admission.k8s.io/v1');
    t.equal(answer.kind, 'AdmissionReview');
    t.equal(answer.response?.uid, podRequest.uid, 'echoes the uid');
    t.equal(answer.response?.allowed, true);
    t.equal(answer.response?.patchType, 'JSONPatch');
    t.same(JSON.parse(Buffer.from(answer.response?.patch ?? '', 'base64').toString('utf8')), [
      { op: 'add', path: '/metadata/labels/tp-smoke~1mutated', value: 'true' },
    ]);
    t.equal(server.requests.length, before + 1);
    t.same(server.requests.at(-1), podRequest);
  });

  t.test('denies, with the message, when admit throws', async (t) => {
    const request = { ...podRequest, uid: 'u2', object: { metadata: { name: 'explode' } } };
    const reply = await post(server, tls.caCertPem, '/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }));
    t.equal(reply.status, 200);
    const answer = JSON.parse(reply.body) as AdmissionReview;
    t.same(answer.response, { uid: 'u2', allowed: false, status: { code: 403, message: 'webhook failed: kaboom' } });
  });

  const bad: Array<[string, string, string, number]> = [
    ['another path', '/validate', '{}', 404],
    ['a body that is not JSON', '/mutate', 'not json', 400],
    ['JSON that is not a review', '/mutate', '{"kind":"Pod"}', 400],
    ['a review without a request', '/mutate', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', 400],
  ];
  for (const [name, path, body, status] of bad) {
    t.test(`rejects ${name} with ${status} and records nothing`, async (t) => {
      const before = server.requests.length;
      const reply = await post(server, tls.caCertPem, path, body);
      t.equal(reply.status, status);
      t.equal(server.requests.length, before);
    });
  }

  t.test('a client that does not trust our CA is refused', async (t) => {
    const other = await mkdtemp(join(tmpdir(), 'tp-webhook-test-'));
    t.teardown(() => rm(other, { recursive: true, force: true }));
    const stranger = await generateServingCert({ dir: other, hosts: ['127.0.0.1'] });
    await t.rejects(post(server, stranger.caCertPem, '/mutate', '{}'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });
});
