/**
 * Personal (HTTP header) intercepts end to end on the real cluster: two developers (two CLIs,
 * each with its own daemon and manager session) hold personal intercepts with different
 * `x-user` values on the same port while traffic without the header keeps reaching the app.
 * Requests come from a pod inside the cluster, interleaved on shared keep-alive connections,
 * plus a WebSocket and gRPC calls routed by metadata; every answer is counted where it landed.
 *
 * Shares the cluster with other suites: installs the traffic-manager only when it is missing and
 * never uninstalls it; everything else lives in this run's own namespace, deleted at the end.
 */
import {
  Server as GrpcServer,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { GRPC_APP_SCRIPT, parseTrafficResult, serveWebSocket, TRAFFIC_SCRIPT, type TrafficPlan } from '../src/personal-traffic.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-pers-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const alice: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const bob: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

// ---------------------------------------------------------------------------------------------
// Fixtures

const labels = (app: string) => ({ app });

function deployment(name: string, container: object): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels(name) },
      template: { metadata: { labels: labels(name) }, spec: { terminationGracePeriodSeconds: 1, containers: [container] } },
    },
  };
}

const web = deployment('web', {
  name: 'app',
  image: ECHO_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  ports: [{ name: 'http', containerPort: 8080 }],
  readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
});

const grpcApp = deployment('grpc', {
  name: 'app',
  image: ECHO_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  command: ['node', '-e', GRPC_APP_SCRIPT],
  ports: [{ name: 'grpc', containerPort: 50051 }],
  readinessProbe: { tcpSocket: { port: 'grpc' }, periodSeconds: 1 },
});

function service(name: string, port: number, targetPort: string): object {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: labels(name), ports: [{ name: targetPort, port, targetPort }] } };
}

const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }], terminationGracePeriodSeconds: 1 },
};

/** A developer's HTTP server on the workstation: answers `{host: name}`, serves WebSockets, counts. */
interface LocalHttp {
  readonly port: number;
  requests: number;
  websocketMessages: string[];
}

/** Lives until the end of the file (several cases use it). */
async function localHttp(name: string): Promise<LocalHttp> {
  const local: LocalHttp = { port: 0, requests: 0, websocketMessages: [] };
  const server: Server = createServer((req, res) => {
    local.requests++;
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ host: name, user: req.headers['x-user'] ?? '' }));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) =>
    serveWebSocket(socket, String(req.headers['sec-websocket-key']), name, (text) => local.websocketMessages.push(text)),
  );
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  (local as { port: number }).port = (server.address() as AddressInfo).port;
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((ok) => server.close(() => ok()));
  });
  return local;
}

const echoService: ServiceDefinition = {
  echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: 'echo',
  },
};

/** A developer's gRPC server (grpc-js) on the workstation: answers `<name>:<request>` and counts. */
async function localGrpc(name: string): Promise<{ port: number; calls: string[] }> {
  const calls: string[] = [];
  const server = new GrpcServer();
  server.addService(echoService, {
    echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      calls.push(`${call.request.toString()} x-user=${String(call.metadata.get('x-user')[0] ?? '')}`);
      callback(null, Buffer.from(`${name}:${call.request.toString()}`));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => new Promise<void>((ok) => server.tryShutdown(() => ok())));
  return { port, calls };
}

/** Runs the traffic script in the client pod. */
async function sendTraffic(plan: TrafficPlan) {
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'env', `TRAFFIC_PLAN=${JSON.stringify(plan)}`, 'node', '-e', TRAFFIC_SCRIPT], { timeoutMs: 90_000 });
  return parseTrafficResult(out);
}

/** One GET from the client pod with `x-user: user`; the `host` that answered. */
async function answeredBy(url: string, user: string): Promise<string> {
  const script = `fetch(process.argv[1], { headers: { 'x-user': process.argv[2] }, signal: AbortSignal.timeout(5000) })
    .then((r) => r.json()).then((j) => console.log(j.host))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  return (await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, url, user], { timeoutMs: 20_000 })).trim();
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), web, service('web', 80, 'http'), grpcApp, service('grpc', 50051, 'grpc'), clientPod]);
  for (const app of ['web', 'grpc']) {
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=120s'], { timeoutMs: 130_000 });
  }
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  // Other suites share the cluster: install only when no traffic-manager is there.
  const installed = await processRunner.run('kubectl', ['--kubeconfig', cluster.kubeconfig, '-n', MANAGER_NS, 'get', 'deployment', 'traffic-manager']);
  if (installed.exitCode !== 0) await alice.ok(['install'], 300_000);
  await alice.ok(['connect']);
  await bob.ok(['connect']);
});

t.teardown(async () => {
  await alice.dispose();
  await bob.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

// ---------------------------------------------------------------------------------------------
// Not intercepted yet

t.test('bad input: a malformed --http-path-prefix or --http-method is a one-line user error', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['--http-path-prefix', 'api/', /it does not start with "\/"/],
    ['--http-path-prefix', '/api?v=1', /it contains "\?"/],
    ['--http-method', 'GET POST', /"GET POST" is not an HTTP method/],
  ];
  for (const [flag, value, problem] of cases) {
    const r = await alice.run(['intercept', 'web', '--port', '9999:http', flag, value]);
    t.equal(r.exitCode, 2, `${flag} ${value}: a user error`);
    t.match(r.stderr, new RegExp(`^telepresence: invalid ${flag} "${value.replace(/[?]/g, '\\?')}": `), `${flag} ${value}: names the flag`);
    t.match(r.stderr, problem, `${flag} ${value}: says what is wrong`);
    t.match(r.stderr, new RegExp(`\\nhint: use ${flag} `), `${flag} ${value}: says what to type`);
  }
});

t.test('bad input: a malformed --http-header is a one-line user error', async (t) => {
  for (const flag of ['x-user', '=alice', 'x user=alice']) {
    const r = await alice.run(['intercept', 'web', '--port', '9999:http', '--http-header', flag]);
    t.equal(r.exitCode, 2, `${flag}: a user error`);
    t.match(r.stderr, new RegExp(`^telepresence: invalid --http-header "${flag}": .+\\nhint: use --http-header <name>=<value>`), `${flag}: says what is wrong and what to type`);
  }
});

// ---------------------------------------------------------------------------------------------
// Two personal intercepts on one port

let aliceWeb: LocalHttp;
let bobWeb: LocalHttp;
let aliceGrpc: { port: number; calls: string[] };

t.test('two developers intercept the same port with different headers', async (t) => {
  aliceWeb = await localHttp('alice');
  bobWeb = await localHttp('bob');
  aliceGrpc = await localGrpc('alice');
  const first = await alice.ok(['intercept', 'web', '--port', `${aliceWeb.port}:http`, '--http-header', 'x-user=alice', '--name', 'web-alice', '--mount', 'false'], 300_000);
  t.match(first, /Requests {7}: with x-user=alice \(personal intercept\)/, `reports the personal intercept:\n${first}`);
  await bob.ok(['intercept', 'web', '--port', `${bobWeb.port}:http`, '--http-header', 'X-User=bob', '--name', 'web-bob', '--mount', 'false'], 300_000);
  await alice.ok(['intercept', 'grpc', '--port', `${aliceGrpc.port}:grpc`, '--http-header', 'x-user=alice', '--name', 'grpc-alice', '--mount', 'false'], 300_000);
  // The agents learn of the intercepts from the manager's next snapshot.
  for (const [user, want] of [['alice', 'alice'], ['bob', 'bob']] as const) {
    await eventually(async () => {
      const host = await answeredBy(`http://web.${ns}/`, user);
      if (host !== want) throw new Error(`answered by ${host}`);
    }, { timeoutMs: 30_000, intervalMs: 500, what: `a request with x-user=${user} answered by ${want}` });
  }
  t.match(await answeredBy(`http://web.${ns}/`, 'carol'), /^web-/, 'another header value reaches the app');
});

t.test('interleaved traffic on shared connections: every request reaches the right place', async (t) => {
  const before = { alice: aliceWeb.requests, bob: bobWeb.requests };
  const pattern = ['alice', '', 'bob', '', 'alice', 'bob', '', '', 'bob', 'alice'];
  const users = Array.from({ length: 60 }, (_, i) => pattern[i % pattern.length]!);
  const grpcUsers = Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? '' : 'alice'));
  const result = await sendTraffic({
    http: { url: `http://web.${ns}/`, users },
    ws: { host: `web.${ns}`, port: 80, user: 'bob' },
    grpc: { authority: `grpc.${ns}:50051`, users: grpcUsers },
  });
  t.strictSame(result.errors, [], 'no request failed');

  const misrouted = result.http.filter((r) => r.status !== 200 || (r.user === '' ? !r.host.startsWith('web-') : r.host !== r.user));
  t.strictSame(misrouted, [], 'no HTTP request misrouted');
  const count = (want: string) => users.filter((u) => u === want).length;
  t.equal(result.http.filter((r) => r.host === 'alice').length, count('alice'), 'alice answered her requests');
  t.equal(result.http.filter((r) => r.host === 'bob').length, count('bob'), 'bob answered his');
  t.equal(result.http.filter((r) => r.host.startsWith('web-')).length, count(''), 'the app answered the rest');
  t.equal(aliceWeb.requests - before.alice, count('alice'), 'alice\'s server counted exactly her requests');
  t.equal(bobWeb.requests - before.bob, count('bob'), 'bob\'s server counted exactly his');
  t.ok(result.httpConnections <= 2, `the ${users.length} requests shared ${result.httpConnections} keep-alive connections`);

  t.match(result.ws.status, /^HTTP\/1\.1 101 /, 'the WebSocket upgrade was accepted');
  t.ok(result.ws.acceptOk, 'by bob\'s server (its Sec-WebSocket-Accept)');
  t.strictSame(result.ws.replies, ['bob:hello', 'bob:again'], 'both frames went to bob and back');
  t.strictSame(bobWeb.websocketMessages, ['hello', 'again'], 'bob\'s server got both frames');

  t.strictSame(
    result.grpc.map((c) => `${c.status} ${c.message}`),
    grpcUsers.map((u, i) => `0 ${u === 'alice' ? 'alice' : 'app'}:m${i}`),
    'each gRPC call answered (status OK) by its destination',
  );
  t.equal(aliceGrpc.calls.length, grpcUsers.filter((u) => u === 'alice').length, 'alice\'s gRPC server counted exactly her calls');
  t.ok(aliceGrpc.calls.every((c) => c.endsWith('x-user=alice')), 'with the metadata that routed them');
});

t.test('list and status show each intercept\'s headers and owner', async (t) => {
  interface Row {
    name: string;
    intercepts: Array<{ name: string; client: string; headers: Array<{ name: string; value: string }> }>;
  }
  const listed = await bob.json<{ workloads: Row[] }>(['list']);
  const webRow = listed.workloads.find((w) => w.name === 'web');
  t.strictSame(
    webRow?.intercepts.map((i) => [i.name, i.headers]).sort(),
    [
      ['web-alice', [{ name: 'x-user', value: 'alice' }]],
      ['web-bob', [{ name: 'X-User', value: 'bob' }]],
    ],
    'both personal intercepts of web, with their headers',
  );
  t.ok(webRow?.intercepts.every((i) => /@/.test(i.client)), 'each names its owner (user@host)');
  const text = await bob.ok(['list']);
  t.match(text, /web-alice by \S+@\S+ \[x-user=alice\]/, `list text:\n${text}`);
  const status = await alice.json<{ intercepts: Array<{ name: string; headers: unknown }> }>(['status']);
  t.strictSame(
    status.intercepts.map((i) => [i.name, i.headers]).sort(),
    [
      ['grpc-alice', [{ name: 'x-user', value: 'alice' }]],
      ['web-alice', [{ name: 'x-user', value: 'alice' }]],
    ],
    'status lists the daemon\'s own intercepts with their headers',
  );
  t.match(await alice.ok(['status']), /web-alice: web requests with \[x-user=alice\] -> localhost:\d+, by \S+@\S+/, 'status text names headers and owner');
});

t.test('conflicts: a global intercept, or the same headers again, name the holder', async (t) => {
  const global = await bob.run(['intercept', 'web', '--port', '9998:http', '--name', 'web-global', '--mount', 'false']);
  t.equal(global.exitCode, 2, 'a global intercept beside personal ones is a user error');
  t.match(global.stderr, /already intercepted by \S+@\S+ \(a personal intercept for requests with x-user=alice/, 'names the holder and the headers');
  t.match(global.stderr, /--http-header <name>=<value>/, 'suggests a personal intercept');
  const same = await bob.run(['intercept', 'web', '--port', '9997:http', '--name', 'web-bob2', '--http-header', 'X-USER=alice', '--mount', 'false']);
  t.equal(same.exitCode, 2, 'the same header set twice is a user error');
  t.match(same.stderr, /already intercepted by \S+@\S+ \(a personal intercept with the same filter, requests with x-user=alice/, 'names the holder and the shared headers');
});

t.test('leave: the developer\'s requests go back to the app, the other keeps his', async (t) => {
  await alice.ok(['leave', 'web-alice']);
  await eventually(async () => {
    const host = await answeredBy(`http://web.${ns}/`, 'alice');
    if (!host.startsWith('web-')) throw new Error(`answered by ${host}`);
  }, { timeoutMs: 20_000, intervalMs: 500, what: 'alice\'s requests answered by the app again' });
  t.equal(await answeredBy(`http://web.${ns}/`, 'bob'), 'bob', 'bob still gets his');
  await bob.ok(['leave', 'web-bob']);
  await alice.ok(['leave', 'grpc-alice']);
  const host = await eventually(async () => {
    const h = await answeredBy(`http://web.${ns}/`, 'bob');
    if (!h.startsWith('web-')) throw new Error(`answered by ${h}`);
    return h;
  }, { timeoutMs: 20_000, intervalMs: 500, what: 'bob\'s requests answered by the app after he left' });
  t.match(host, /^web-/, 'with no intercept left, the app answers everything');
});

// ---------------------------------------------------------------------------------------------
// Two personal intercepts by path prefix and by method (no headers)

/** A developer's HTTP server that records `<method> <target>` of each request it answers. */
async function localRecorder(name: string): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ host: name }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((ok) => server.close(() => ok()));
  });
  return { port: (server.address() as AddressInfo).port, seen };
}

/**
 * Sends each `[method, path]` of `REQUESTS` (JSON in the environment) to `URL` from the client
 * pod, in pairs over a keep-alive agent of two connections (so requests for different places
 * share connections), a small body with each POST, PUT and DELETE; prints one JSON line:
 * `{results: [{method, path, status, host}], errors}`. node:http sends the path as given
 * (`//api/x` stays what it is; fetch would not).
 */
const FILTER_TRAFFIC_SCRIPT = String.raw`
const http = require('node:http');
const requests = JSON.parse(process.env.REQUESTS);
const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
const base = new URL(process.env.URL);
const errors = [];
const one = ([method, path]) => new Promise((resolve) => {
  const body = method === 'GET' || method === 'HEAD' ? '' : 'x';
  const req = http.request({ host: base.hostname, port: base.port || 80, method, path, agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      let host = '';
      try { host = JSON.parse(text).host; } catch (e) { host = 'unparsable: ' + text.slice(0, 80); }
      resolve({ method, path, status: res.statusCode, host });
    });
  });
  req.setTimeout(10000, () => req.destroy(new Error('no answer within 10 s')));
  req.on('error', (e) => { errors.push(method + ' ' + path + ': ' + e.message); resolve({ method, path, status: 0, host: '' }); });
  req.end(body);
});
(async () => {
  const results = [];
  for (let i = 0; i < requests.length; i += 2) results.push(...(await Promise.all(requests.slice(i, i + 2).map(one))));
  agent.destroy();
  console.log(JSON.stringify({ results, errors }));
})();
`;

interface FilterTraffic {
  results: Array<{ method: string; path: string; status: number; host: string }>;
  errors: string[];
}

async function sendFilterTraffic(requests: ReadonlyArray<readonly [string, string]>): Promise<FilterTraffic> {
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'env', `REQUESTS=${JSON.stringify(requests)}`, `URL=http://web.${ns}/`, 'node', '-e', FILTER_TRAFFIC_SCRIPT], {
    timeoutMs: 90_000,
  });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as FilterTraffic;
}

let pathDev: { port: number; seen: string[] };
let methodDev: { port: number; seen: string[] };

t.test('two developers intercept the same port, one by path prefix, one by method', async (t) => {
  pathDev = await localRecorder('paths');
  methodDev = await localRecorder('methods');
  const first = await alice.ok(['intercept', 'web', '--port', `${pathDev.port}:http`, '--http-path-prefix', '/api/', '--name', 'web-paths', '--mount', 'false'], 300_000);
  t.match(first, /Requests {7}: to \/api\/ \(personal intercept\)/, `a path prefix alone makes a personal intercept:\n${first}`);
  const second = await bob.ok(['intercept', 'web', '--port', `${methodDev.port}:http`, '--http-method', 'post', '--http-method', 'DELETE', '--name', 'web-methods', '--mount', 'false'], 300_000);
  t.match(second, /Requests {7}: with POST or DELETE \(personal intercept\)/, `methods alone make a personal intercept:\n${second}`);
  // The agent learns of the intercepts from the manager's next snapshot.
  await eventually(async () => {
    const probe = await sendFilterTraffic([
      ['GET', '/api/probe'],
      ['POST', '/probe'],
    ]);
    const hosts = probe.results.map((r) => r.host).join(',');
    if (hosts !== 'paths,methods') throw new Error(`answered by ${hosts} ${probe.errors.join('; ')}`);
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'a request to /api/ answered by the path intercept and a POST by the method one' });
});

t.test('requests by path and by method: each reaches the right one, none misrouted, the rest reach the app', async (t) => {
  pathDev.seen.splice(0);
  methodDev.seen.splice(0);
  const kinds: ReadonlyArray<readonly [string, string]> = [
    ['GET', '/api/users'],
    ['GET', '/'],
    ['POST', '/orders'],
    ['GET', '/api/users?page=2'],
    ['PUT', '/orders/1'],
    ['DELETE', '/orders/1'],
    // A prefix beats methods alone (the longer prefix is the more specific): a POST to /api/ is the path intercept's.
    ['POST', '/api/orders'],
    ['GET', '/web?next=/api/'],
    ['GET', '/apix'],
    ['GET', '//api/users'],
  ];
  const requests = Array.from({ length: 60 }, (_, i) => kinds[i % kinds.length]!);
  const expected = ([method, path]: readonly [string, string]): string =>
    path.split('?')[0]!.startsWith('/api/') ? 'paths' : method === 'POST' || method === 'DELETE' ? 'methods' : 'app';
  const { results, errors } = await sendFilterTraffic(requests);
  t.strictSame(errors, [], 'no request failed');
  t.equal(results.length, requests.length, 'every request answered');
  const misrouted = results.filter((r) => {
    const want = expected([r.method, r.path]);
    return r.status !== 200 || (want === 'app' ? !r.host.startsWith('web-') : r.host !== want);
  });
  t.strictSame(misrouted, [], 'no request misrouted');
  const count = (want: string) => requests.filter((r) => expected(r) === want).length;
  t.equal(results.filter((r) => r.host === 'paths').length, count('paths'), 'the path intercept answered the requests to /api/');
  t.equal(results.filter((r) => r.host === 'methods').length, count('methods'), 'the method intercept answered the other POSTs and DELETEs');
  t.equal(results.filter((r) => r.host.startsWith('web-')).length, count('app'), 'the app answered the rest');
  t.strictSame(
    pathDev.seen,
    requests.filter((r) => expected(r) === 'paths').map(([m, p]) => `${m} ${p}`),
    'the path developer\'s server saw exactly those requests, in order',
  );
  t.strictSame(
    methodDev.seen,
    requests.filter((r) => expected(r) === 'methods').map(([m, p]) => `${m} ${p}`),
    'the method developer\'s server saw exactly those',
  );
});

t.test('list shows the filters; the same filter again is a conflict that names the holder', async (t) => {
  const text = await bob.ok(['list']);
  t.match(text, /web-paths by \S+@\S+ \[\/api\/\*\]/, `list text:\n${text}`);
  t.match(text, /web-methods by \S+@\S+ \[POST,DELETE\]/, `list text:\n${text}`);
  const same = await bob.run(['intercept', 'web', '--port', '9996:http', '--http-path-prefix', '/api/', '--name', 'web-paths2', '--mount', 'false']);
  t.equal(same.exitCode, 2, 'the same path prefix twice is a user error');
  t.match(same.stderr, /already intercepted by \S+@\S+ \(a personal intercept with the same filter, requests to \/api\/, intercept "web-paths"\)/, 'names the holder, the intercept and the filter');
  t.match(same.stderr, /--http-path-prefix/, 'suggests another prefix');
});

t.test('leave: requests by path and method reach the app again', async (t) => {
  await alice.ok(['leave', 'web-paths']);
  await bob.ok(['leave', 'web-methods']);
  await eventually(async () => {
    const after = await sendFilterTraffic([
      ['GET', '/api/x'],
      ['POST', '/x'],
    ]);
    if (!after.results.every((r) => r.host.startsWith('web-'))) throw new Error(`answered by ${after.results.map((r) => r.host).join(',')}`);
  }, { timeoutMs: 20_000, intervalMs: 500, what: 'requests answered by the app after both left' });
  t.pass('both intercepts gone, the app answers everything');
});
