import { InterceptDisposition } from '@telepresence-ts/core';
import t from 'tap';
import { askInterceptSpec, askReplaceSpec, askWiretapSpec, interceptedMessage, replacedMessage, localPortProblem, parseHeaders, parseHttpFilter } from '../src/intercept-flow.js';
import type { InterceptablePort } from '../src/ports.js';
import type { WorkloadView } from '../src/session.js';
import { FakeHost } from './fixtures/fake-host.js';

const HTTP: InterceptablePort = { serviceName: 'web', servicePortName: 'http', servicePort: 80, containerName: 'app', containerPort: 8080 };
const METRICS: InterceptablePort = { serviceName: 'web', servicePortName: '', servicePort: 9100, containerName: 'side', containerPort: 9100 };

function web(ports: InterceptablePort[]): WorkloadView {
  return { namespace: 'shop', name: 'web', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'none', ports, intercepts: [], containerEnv: new Map() };
}

const headerCases = [
  { text: '', want: [] },
  { text: 'x-user=alice', want: [{ name: 'x-user', value: 'alice' }] },
  { text: ' X-User = alice , x-env: dev ', want: [{ name: 'x-user', value: 'alice' }, { name: 'x-env', value: 'dev' }] },
];
for (const c of headerCases) {
  t.test(`parseHeaders(${JSON.stringify(c.text)})`, (t) => {
    t.same(parseHeaders(c.text), c.want);
    t.end();
  });
}
t.test('parseHeaders refuses what is not name=value', (t) => {
  t.throws(() => parseHeaders('x-user'), { code: 'bad-header' });
  t.throws(() => parseHeaders('x-user='), { code: 'bad-header' });
  t.throws(() => parseHeaders('bad header=1'), { code: 'bad-header' });
  t.end();
});

const portCases = [
  { text: '8080', want: undefined },
  { text: '0', want: 'a port number, 1-65535' },
  { text: '70000', want: 'a port number, 1-65535' },
  { text: 'http', want: 'a port number, 1-65535' },
  { text: '3000', want: 'port 3000 already receives another intercept' },
];
for (const c of portCases) {
  t.test(`local port ${c.text}`, (t) => {
    t.equal(localPortProblem(c.text, new Set([3000])), c.want);
    t.end();
  });
}

t.test('one port: asks only the local port and headers', async (t) => {
  const host = new FakeHost();
  host.answers = ['8081', 'x-user=alice'];
  const spec = await askInterceptSpec(host, web([HTTP]), undefined, new Set());
  t.same(host.prompts.map((p) => [p.kind, p.value]), [
    ['text', '8080'],
    ['text', undefined],
  ], 'no port question; the container port is suggested');
  t.same(spec, {
    name: '',
    namespace: 'shop',
    workloadName: 'web',
    workloadKind: 'Deployment',
    serviceName: 'web',
    servicePort: 'http',
    containerName: 'app',
    localPort: 8081,
    headers: [{ name: 'x-user', value: 'alice' }],
    httpPathPrefix: '',
    httpMethods: [],
    mode: '',
    ports: [],
  });
});

t.test('a wiretap asks the port and the local port, and has no filter', async (t) => {
  const host = new FakeHost();
  host.picks = ['web:9100 → side:9100'];
  host.answers = ['9200'];
  const spec = await askWiretapSpec(host, web([HTTP, METRICS]), undefined, new Set([9100]));
  t.same(host.prompts.map((p) => [p.kind, p.value]).at(-1), ['text', '9101'], 'a free port is suggested');
  t.same(spec, {
    name: '',
    namespace: 'shop',
    workloadName: 'web',
    workloadKind: 'Deployment',
    serviceName: 'web',
    servicePort: '9100',
    containerName: 'side',
    localPort: 9200,
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'wiretap',
    ports: [],
  });
});

t.test('several ports: asks which, by service:port → container:port', async (t) => {
  const host = new FakeHost();
  host.picks = ['web:9100 → side:9100'];
  host.answers = ['9100', ''];
  const spec = await askInterceptSpec(host, web([HTTP, METRICS]), undefined, new Set());
  t.same(host.prompts[0]?.options, ['web:80 (http) → app:8080', 'web:9100 → side:9100']);
  t.match(spec, { servicePort: '9100', containerName: 'side', localPort: 9100, headers: [] });
});

t.test('a port given by the tree is not asked for', async (t) => {
  const host = new FakeHost();
  host.answers = ['9100', ''];
  await askInterceptSpec(host, web([HTTP, METRICS]), METRICS, new Set());
  t.same(host.prompts.map((p) => p.kind), ['text', 'text']);
});

t.test('the suggested local port skips ports already intercepted', async (t) => {
  const host = new FakeHost();
  host.answers = [undefined];
  t.equal(await askInterceptSpec(host, web([HTTP]), undefined, new Set([8080, 8081])), undefined, 'cancelling the local port cancels');
  t.equal(host.prompts[0]?.value, '8082');
});

t.test('cancelling the port pick or the headers cancels', async (t) => {
  const host = new FakeHost();
  host.picks = [undefined];
  t.equal(await askInterceptSpec(host, web([HTTP, METRICS]), undefined, new Set()), undefined);
  host.answers = ['8080', undefined];
  t.equal(await askInterceptSpec(host, web([HTTP]), undefined, new Set()), undefined);
});

t.test('a workload without ports says how to expose it', async (t) => {
  await t.rejects(askInterceptSpec(new FakeHost(), web([]), undefined, new Set()), { code: 'no-service', hint: /kubectl expose deployment\/web -n shop/ });
});

t.test('the validators reject bad answers', async (t) => {
  const host = new FakeHost();
  host.answers = ['99999', 'nope'];
  await askInterceptSpec(host, web([HTTP]), undefined, new Set()).catch(() => undefined);
  t.same(host.prompts.map((p) => p.problem), ['a port number, 1-65535', '"nope" is not a header match']);
});

t.test('interceptedMessage names the service port, the local port and the headers', (t) => {
  const base = {
    id: 's:web-shop',
    target: { serviceName: 'web', serviceUid: '', servicePortName: 'http', servicePort: 80, protocol: 'TCP', containerName: 'app', containerPort: 8080, agentPort: 1, sharedWith: [] },
    clientSessionId: 's',
    clientName: 'me',
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
  const spec = { name: 'web-shop', namespace: 'shop', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  t.equal(interceptedMessage({ ...base, spec }), 'Intercepted web: web:80 → localhost:8080');
  t.equal(interceptedMessage({ ...base, spec: { ...spec, headers: [{ name: 'x-user', value: 'a' }] } }), 'Intercepted web: web:80 → localhost:8080 (requests with x-user=a)');
  t.equal(
    interceptedMessage({ ...base, spec, target: { ...base.target, sharedWith: ['web-lb:8080'] } }),
    'Intercepted web: web:80 → localhost:8080; also web-lb:8080, the same container port',
    'and the other Service ports it takes too',
  );
  t.end();
});

const filterCases: Array<{ text: string; want?: ReturnType<typeof parseHttpFilter>; problem?: RegExp }> = [
  { text: '', want: { headers: [], httpPathPrefix: '', httpMethods: [] } },
  { text: 'x-user=alice', want: { headers: [{ name: 'x-user', value: 'alice' }], httpPathPrefix: '', httpMethods: [] } },
  { text: '/api/', want: { headers: [], httpPathPrefix: '/api/', httpMethods: [] } },
  { text: 'GET, POST, GET', want: { headers: [], httpPathPrefix: '', httpMethods: ['GET', 'POST'] } },
  { text: ' x-user = alice , /api/ , GET , POST ', want: { headers: [{ name: 'x-user', value: 'alice' }], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] } },
  { text: 'api/', problem: /"api\/" is not a header match/ },
  { text: '/api?x=1', problem: /"\/api\?x=1" is not a path prefix: it contains "\?"/ },
  { text: '/a/, /b/', problem: /a second path prefix/ },
  { text: 'get', problem: /"get" is not a header match/ },
];
for (const c of filterCases) {
  t.test(`parseHttpFilter(${JSON.stringify(c.text)})`, (t) => {
    if (c.want !== undefined) t.strictSame(parseHttpFilter(c.text), c.want);
    else t.throws(() => parseHttpFilter(c.text), { category: 'user', message: c.problem ?? /./, hint: /x-user=alice, \/api\/, GET, POST/ });
    t.end();
  });
}

t.test('the filter answer may name a path prefix and methods: they go into the spec', async (t) => {
  const host = new FakeHost();
  host.answers = ['8081', '/api/, GET, POST'];
  const spec = await askInterceptSpec(host, web([HTTP]), undefined, new Set());
  t.match(spec, { localPort: 8081, headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] });
  t.equal(host.prompts.length, 2, 'one question for the whole filter');
});

t.test('interceptedMessage says which requests a path or method filter takes', (t) => {
  const ii = {
    id: 's:web-shop',
    spec: { name: 'web-shop', namespace: 'shop', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'], mode: '', ports: [] },
    target: { serviceName: 'web', serviceUid: '', servicePortName: 'http', servicePort: 80, protocol: 'TCP', containerName: 'app', containerPort: 8080, agentPort: 1, sharedWith: [] },
    clientSessionId: 's',
    clientName: 'me',
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
  t.equal(interceptedMessage(ii), 'Intercepted web: web:80 → localhost:8080 (requests to /api/ with GET or POST)');
  t.end();
});

t.test('a replace asks which container when the Services lead to several, and to confirm', async (t) => {
  const host = new FakeHost();
  host.picks = ['side'];
  host.choices = ['Replace'];
  const spec = await askReplaceSpec(host, { ...web([HTTP, METRICS]), replicas: 3 });
  t.match(host.messages, [{ level: 'warning', text: /stops running in all 3 replicas until you leave, and its ports 9100 come/ }]);
  t.match(spec, { workloadName: 'web', containerName: 'side', mode: 'replace', localPort: 0, ports: [] });
  await t.rejects(askReplaceSpec(new FakeHost(), web([])), { code: 'no-service' });
  t.equal(
    replacedMessage({ id: 's:x', spec: { ...spec!, ports: [{ containerPort: 9100, localPort: 9100 }, { containerPort: 8080, localPort: 18080 }] }, target: undefined, clientSessionId: 's', clientName: '', disposition: 2, message: '', createdAt: 0, stats: undefined }),
    'Replacing side of web: 9100 → localhost:9100, 8080 → localhost:18080 (not running in the cluster until you leave)',
  );
});
