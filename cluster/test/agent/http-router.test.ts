/**
 * The per-request router, driven through a Forwarder on real sockets: an app and two
 * "developers" (the intercepting clients' local servers) on 127.0.0.1, tunnels stood in for by
 * plain connections to the developer's server.
 */
import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  Server as GrpcServer,
  ServerCredentials,
  status as grpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect as connectH2, constants as h2, createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { dialLocalApp, Forwarder } from '../../src/agent/forwarder.js';
import type { ForwardRoute, PersonalIntercept } from '../../src/agent/routes.js';
import { closeServer, eventually, exchange, memoryLogger, openConnection, startReplyServer } from './helpers.js';

/** An HTTP server that answers `<name> <method> <url> <body>` and counts what it served. */
interface Backend {
  readonly name: string;
  readonly port: number;
  readonly server: Server;
  /** Requests served, by `x-seq` header when given (else the url). */
  readonly served: string[];
  /** Connections accepted. */
  connections: number;
}

async function startBackend(t: Test, name: string, extra?: (server: Server) => void): Promise<Backend> {
  const served: string[] = [];
  // Header blocks up to 64 KiB, as the router allows.
  const server = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.url === '/custom') {
        // A status line and header case the router must not normalise.
        res.sendDate = false;
        res.writeHead(299, 'Quite Fine', ['X-MiXeD-Case', 'v', 'Content-Length', '2']);
        res.end('ok');
        return;
      }
      if (req.url === '/stream' || req.url === '/trailers') return; // handled by `extra`
      served.push(String(req.headers['x-seq'] ?? req.url));
      const text = `${name} ${req.method} ${req.url} ${body}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  const backend: Backend = { name, port: 0, server, served, connections: 0 };
  server.on('connection', () => backend.connections++);
  extra?.(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (backend as { port: number }).port = (server.address() as AddressInfo).port;
  t.teardown(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  return backend;
}

const personal = (id: string, ...headers: Array<[string, string]>): PersonalIntercept => ({
  id,
  createdAt: 0,
  headers: headers.map(([name, value]) => ({ name, value })),
});

/**
 * A forwarder for one route to `appPort` whose personal intercepts are `intercepts`; a tunnel to
 * intercept `id` is a connection to `developers[id]`.
 */
async function startRouter(t: Test, appPort: number, intercepts: PersonalIntercept[], developers: Record<string, number>) {
  const route: ForwardRoute = { containerName: 'app', containerPort: appPort, agentPort: 9901, label: 'echo:http' };
  const tunnels: string[] = [];
  const log = memoryLogger();
  const forwarder = await Forwarder.start(
    [route],
    {
      interceptFor: () => undefined,
      personalFor: () => intercepts,
      openTunnel: (id): Duplex | undefined => {
        tunnels.push(id);
        const port = developers[id];
        return port === undefined ? undefined : connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      },
      dialApp: dialLocalApp,
      isRoutingProbe: () => false,
    },
    log,
    { host: '127.0.0.1', bindPort: () => 0 },
  );
  t.teardown(() => forwarder.close());
  return { port: forwarder.boundPort(9901) ?? 0, tunnels, log, forwarder };
}

function get(port: number, agent: Agent | false, path: string, headers: Record<string, string>): Promise<{ status: number; body: string; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, res }));
    });
    req.on('error', reject);
    req.end();
  });
}

const ALICE = 'sess-a:alice';
const BOB = 'sess-b:bob';

t.test('keep-alive: interleaved requests on one connection each reach their own place', async (t) => {
  const app = await startBackend(t, 'app');
  const alice = await startBackend(t, 'alice');
  const bob = await startBackend(t, 'bob');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice']), personal(BOB, ['x-user', 'bob'])], { [ALICE]: alice.port, [BOB]: bob.port });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const who = ['alice', 'bob', undefined, 'ALICE', 'bob', 'nobody'];
  const want = { alice: [] as string[], bob: [] as string[], app: [] as string[] };
  for (let i = 0; i < 30; i++) {
    const user = who[i % who.length];
    const headers: Record<string, string> = { 'x-seq': String(i) };
    if (user !== undefined) headers['X-User'] = user;
    const res = await get(router.port, agent, `/r${i}`, headers);
    const expected = user === 'alice' ? 'alice' : user === 'bob' ? 'bob' : 'app';
    want[expected].push(String(i));
    t.equal(res.body, `${expected} GET /r${i} `, `request ${i} (x-user ${user ?? 'none'})`);
  }
  t.strictSame({ alice: alice.served, bob: bob.served, app: app.served }, want, 'every request counted where it belongs, none misrouted');
  t.equal(router.forwarder.connectionCount, 1, 'the client used one connection');
  t.strictSame(router.tunnels.sort(), [ALICE, BOB], 'one tunnel per developer for that connection');
  t.strictSame([alice.connections, bob.connections, app.connections], [1, 1, 1], 'each destination saw one keep-alive connection');
});

t.test('pipelined requests are answered in order, each by its own destination', async (t) => {
  const app = await startBackend(t, 'app');
  const alice = await startBackend(t, 'alice');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  const conn = await openConnection(router.port);
  conn.socket.write(
    'GET /1 HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody' +
      'GET /3 HTTP/1.1\r\nHost: a\r\nx-user: alice\r\nConnection: close\r\n\r\n',
  );
  await conn.ended;
  const bodies = [...conn.received().matchAll(/\r\n\r\n([^]*?)(?=HTTP\/1\.1 |$)/g)].map((m) => m[1]);
  t.strictSame(bodies, ['alice GET /1 ', 'app POST /2 body', 'alice GET /3 '], 'three answers in request order');
  t.strictSame([alice.served, app.served], [['/1', '/3'], ['/2']]);
});

t.test('a chunked request body streams to the developer, and response trailers come back', async (t) => {
  const app = await startBackend(t, 'app');
  let got = '';
  const bob = await startBackend(t, 'bob', (server) =>
    server.on('request', (req, res) => {
      if (req.url !== '/trailers') return;
      req.on('data', (c: Buffer) => (got += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'Transfer-Encoding': 'chunked', Trailer: 'X-Checksum' });
        res.write('part1,');
        res.addTrailers({ 'X-Checksum': `len=${got.length}` });
        res.end('part2');
      });
    }),
  );
  const router = await startRouter(t, app.port, [personal(BOB, ['x-user', 'bob'])], { [BOB]: bob.port });
  const res = await new Promise<{ body: string; trailers: NodeJS.Dict<string>; chunked: string | undefined }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: router.port, path: '/trailers', method: 'POST', agent: false, headers: { 'x-user': 'bob', 'transfer-encoding': 'chunked' } }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => resolve({ body, trailers: r.trailers, chunked: r.headers['transfer-encoding'] }));
    });
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write(`chunk${i};`);
    req.end();
  });
  t.equal(got, Array.from({ length: 10 }, (_, i) => `chunk${i};`).join(''), 'the developer got the whole body');
  t.equal(res.body, 'part1,part2');
  t.equal(res.chunked, 'chunked');
  t.strictSame(res.trailers, { 'x-checksum': `len=${got.length}` }, 'the trailer passed back');
  t.strictSame(app.served, [], 'nothing reached the app');
});

t.test('a streamed response reaches the caller piece by piece', async (t) => {
  const app = await startBackend(t, 'app');
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const alice = await startBackend(t, 'alice', (server) =>
    server.on('request', (req, res) => {
      if (req.url !== '/stream') return;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('first\n');
      void released.then(() => res.end('second\n'));
    }),
  );
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: router.port, path: '/stream', agent: false, headers: { 'x-user': 'alice' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
        // The second part is only sent once the first has arrived here: nothing is buffered whole.
        if (text === 'first\n') release();
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(body, 'first\nsecond\n');
});

t.test('a WebSocket upgrade stays with whoever got the upgrade request', async (t) => {
  const app = await startBackend(t, 'app');
  const upgrades: string[] = [];
  const alice = await startBackend(t, 'alice', (server) =>
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      upgrades.push(String(req.headers['sec-websocket-key']));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (c: Buffer) => socket.write(`alice:${c.toString()}`));
      socket.on('end', () => socket.end());
      socket.on('error', () => socket.destroy());
    }),
  );
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  const conn = await openConnection(router.port);
  conn.socket.write('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k1\r\nSec-WebSocket-Version: 13\r\nx-user: alice\r\n\r\n');
  await conn.waitFor('101 Switching Protocols');
  conn.socket.write('ping');
  await conn.waitFor('alice:ping');
  // After the upgrade the bytes are not HTTP any more: even a request-like frame stays with alice.
  conn.socket.write('GET / HTTP/1.1\r\n\r\n');
  await conn.waitFor('alice:GET / HTTP/1.1');
  t.strictSame(upgrades, ['k1'], 'alice got the upgrade request');
  t.strictSame(app.served, [], 'the app saw nothing');
  conn.socket.destroy();
});

t.test('h2c: gRPC calls on one channel are routed per call by metadata; statuses and trailers pass back', async (t) => {
  const definition: ServiceDefinition = {
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
  const grpcBackend = async (name: string) => {
    const calls: string[] = [];
    const server = new GrpcServer();
    server.addService(definition, {
      echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const text = call.request.toString();
        calls.push(text);
        if (text === 'fail') {
          const trailer = new Metadata();
          trailer.set('x-why', `${name} said no`);
          callback({ code: grpcStatus.FAILED_PRECONDITION, details: `${name} refuses`, metadata: trailer });
          return;
        }
        callback(null, Buffer.from(`${name}:${text}`));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    t.teardown(() => server.forceShutdown());
    return { port, calls };
  };
  const app = await grpcBackend('app');
  const alice = await grpcBackend('alice');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  const Client = makeGenericClientConstructor(definition, 'Echo');
  const client = new Client(`127.0.0.1:${router.port}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const call = (text: string, user?: string) =>
    new Promise<{ ok?: string; err?: ServiceError }>((resolve) => {
      const md = new Metadata();
      if (user !== undefined) md.set('x-user', user);
      (client as unknown as Record<string, (req: Buffer, md: Metadata, cb: (err: ServiceError | null, res?: Buffer) => void) => void>)['echo']!(Buffer.from(text), md, (err, res) =>
        resolve(err ? { err } : { ok: res?.toString() }),
      );
    });
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => call(`m${i}`, i % 2 === 0 ? 'alice' : undefined)));
  t.strictSame(
    results.map((r) => r.ok),
    Array.from({ length: 12 }, (_, i) => `${i % 2 === 0 ? 'alice' : 'app'}:m${i}`),
    'each call answered by its destination',
  );
  t.equal(alice.calls.length, 6);
  t.equal(app.calls.length, 6);
  const failed = await call('fail', 'alice');
  t.equal(failed.err?.code, grpcStatus.FAILED_PRECONDITION, 'the status passed back');
  t.equal(failed.err?.details, 'alice refuses');
  t.strictSame(failed.err?.metadata.get('x-why'), ['alice said no'], 'the trailing metadata passed back');
  t.equal(router.forwarder.connectionCount, 1, 'one channel, one connection');
});

t.test('bytes that are not HTTP go to the app unchanged', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], {});
  t.equal(await exchange(router.port, '\x16\x03\x01hello'), 'app:\x16\x03\x01hello');
  t.equal(await exchange(router.port, 'hi'), 'app:hi', 'a connection that ends before deciding, too');
});

t.test('a developer whose server is down gets a 502 for their requests; others are served', async (t) => {
  const app = await startBackend(t, 'app');
  const gone = await startBackend(t, 'gone');
  const port = gone.port;
  gone.server.close();
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: port });
  const failed = await get(router.port, false, '/x', { 'x-user': 'alice' });
  t.equal(failed.status, 502);
  t.match(failed.body, /intercept sess-a:alice did not answer/);
  const ok = await get(router.port, false, '/y', {});
  t.equal(ok.body, 'app GET /y ');
});

t.test('status line and header case pass back unchanged', async (t) => {
  const app = await startBackend(t, 'app');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], {});
  const conn = await openConnection(router.port);
  conn.socket.write('GET /custom HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  await conn.ended;
  t.match(conn.received(), /^HTTP\/1\.1 299 Quite Fine\r\nX-MiXeD-Case: v\r\nContent-Length: 2\r\n/);
  t.notMatch(conn.received(), /\r\nDate: /, 'no header of the router\'s own');
  t.match(conn.received(), /\r\n\r\nok$/);
});

t.test('without personal intercepts a connection is spliced, not parsed', async (t) => {
  const app = await startBackend(t, 'app');
  const intercepts: PersonalIntercept[] = [];
  const router = await startRouter(t, app.port, intercepts, {});
  await get(router.port, false, '/plain', {});
  t.notOk(router.log.lines.some((l) => l.msg === 'request'), 'no request was parsed');
  intercepts.push(personal(ALICE, ['x-user', 'alice']));
  await get(router.port, false, '/parsed', {});
  await eventually(() => {
    if (!router.log.lines.some((l) => l.msg === 'request')) throw new Error('no request line');
  }, 'the router logged the request');
  t.strictSame(app.served, ['/plain', '/parsed']);
});

t.test('intercepts that come and go mid-connection change where later requests go', async (t) => {
  const app = await startBackend(t, 'app');
  const alice = await startBackend(t, 'alice');
  const intercepts: PersonalIntercept[] = [personal(ALICE, ['x-user', 'alice'])];
  const router = await startRouter(t, app.port, intercepts, { [ALICE]: alice.port });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await get(router.port, agent, '/1', { 'x-user': 'alice' })).body, 'alice GET /1 ');
  intercepts.splice(0);
  t.equal((await get(router.port, agent, '/2', { 'x-user': 'alice' })).body, 'app GET /2 ', 'after alice left: the app, on the same connection');
  intercepts.push(personal(BOB, ['x-user', 'alice']));
  t.equal((await get(router.port, agent, '/3', { 'x-user': 'alice' })).body, 'app GET /3 ', 'a tunnel that cannot be opened: the app');
  t.equal(router.forwarder.connectionCount, 1, 'all on one connection');
});

t.test('a caller that goes away mid-response: the developer\'s request is aborted too', async (t) => {
  const app = await startBackend(t, 'app');
  let closedEarly = false;
  const alice = await startBackend(t, 'alice', (server) =>
    server.on('request', (req, res) => {
      if (req.url !== '/stream') return;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      res.on('close', () => (closedEarly = !res.writableFinished));
    }),
  );
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: router.port, path: '/stream', agent: false, headers: { 'x-user': 'alice' } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    req.end();
  });
  await eventually(() => {
    if (!closedEarly) throw new Error('the developer\'s response is still open');
  }, 'the upstream request aborted');
  t.ok(closedEarly, 'the developer\'s server saw the request go away before it finished');
});

t.test('h2c: a stream the caller cancels is reset at the developer too', async (t) => {
  const app = await startBackend(t, 'app');
  const resets: number[] = [];
  const developer = createH2Server();
  developer.on('stream', (stream: ServerHttp2Stream) => {
    stream.respond({ ':status': 200 });
    stream.write('partial');
    stream.on('error', () => {});
    stream.on('close', () => resets.push(stream.rstCode));
  });
  await new Promise<void>((resolve) => developer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => developer.close(() => resolve())));
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: (developer.address() as AddressInfo).port });
  const session = connectH2(`http://127.0.0.1:${router.port}`);
  t.teardown(() => session.destroy());
  session.on('error', () => {});
  await new Promise<void>((resolve) => {
    const req = session.request({ ':path': '/watch', 'x-user': 'alice' });
    req.on('error', () => {});
    req.once('data', () => {
      req.close(h2.NGHTTP2_CANCEL);
      resolve();
    });
    req.end();
  });
  await eventually(() => {
    if (resets.length === 0) throw new Error('the developer\'s stream is still open');
  }, 'the upstream stream reset');
  t.strictSame(resets, [h2.NGHTTP2_CANCEL], 'reset with CANCEL, as the caller did');
});

t.test('a header block larger than node\'s default limit still reaches the app', async (t) => {
  const app = await startBackend(t, 'app');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], {});
  // 20 KiB: over node's 16 KiB default, under the app's (and the router's 64 KiB) limit.
  const res = await get(router.port, false, '/big', { cookie: 'c'.repeat(20 * 1024) });
  t.equal(res.status, 200);
  t.equal(res.body, 'app GET /big ');
});

t.test('a request whose head arrives after the protocol was decided is still parsed whole', async (t) => {
  const app = await startBackend(t, 'app');
  const alice = await startBackend(t, 'alice');
  const router = await startRouter(t, app.port, [personal(ALICE, ['x-user', 'alice'])], { [ALICE]: alice.port });
  const conn = await openConnection(router.port);
  conn.socket.write('GET /split HTTP/1.1\r\nHo');
  // The rest is only sent once the router has read the first part and handed the socket on.
  await eventually(() => {
    if (!router.log.lines.some((l) => l.msg === 'connection protocol' && l.fields['protocol'] === 'http1')) throw new Error('undecided');
  }, 'the protocol decided');
  conn.socket.write('st: a\r\nx-user: alice\r\nConnection: close\r\n\r\n');
  await conn.ended;
  t.match(conn.received(), /\r\n\r\nalice GET \/split $/, 'routed by a header that came in the second part');
});

/** A personal intercept by path prefix and methods (no headers), as `personalIntercepts` gives it. */
const filtered = (id: string, httpPathPrefix: string, httpMethods: string[]): PersonalIntercept => ({ id, createdAt: 0, headers: [], httpPathPrefix, httpMethods });

t.test('HTTP/1: requests routed by path prefix and by method, on one connection; the rest reach the app', async (t) => {
  const app = await startBackend(t, 'app');
  const paths = await startBackend(t, 'paths');
  const posts = await startBackend(t, 'posts');
  // In matching order (a prefix before methods alone), as personalIntercepts sorts them.
  const router = await startRouter(t, app.port, [filtered(ALICE, '/api/', []), filtered(BOB, '', ['POST', 'DELETE'])], { [ALICE]: paths.port, [BOB]: posts.port });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const cases: Array<{ method: string; path: string; want: 'paths' | 'posts' | 'app' }> = [
    { method: 'GET', path: '/api/users', want: 'paths' },
    { method: 'GET', path: '/api/', want: 'paths' },
    { method: 'POST', path: '/api/users', want: 'paths' },
    { method: 'GET', path: '/api/users?page=2', want: 'paths' },
    { method: 'GET', path: '/web?next=/api/', want: 'app' },
    { method: 'GET', path: '/api', want: 'app' },
    { method: 'GET', path: '//api/users', want: 'app' },
    { method: 'GET', path: '/%61pi/users', want: 'app' },
    { method: 'POST', path: '/orders', want: 'posts' },
    { method: 'DELETE', path: '/orders/1', want: 'posts' },
    { method: 'PUT', path: '/orders/1', want: 'app' },
    { method: 'GET', path: '/', want: 'app' },
  ];
  const want = { paths: [] as string[], posts: [] as string[], app: [] as string[] };
  for (let i = 0; i < cases.length * 2; i++) {
    const c = cases[i % cases.length]!;
    const res = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: router.port, path: c.path, method: c.method, agent, headers: { 'x-seq': String(i) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    want[c.want].push(String(i));
    t.equal(res, `${c.want} ${c.method} ${c.path} `, `${c.method} ${c.path}`);
  }
  t.strictSame({ paths: paths.served, posts: posts.served, app: app.served }, want, 'every request counted where it belongs, none misrouted');
  t.equal(router.forwarder.connectionCount, 1, 'one client connection');
});

t.test('HTTP/1: an absolute-form target is matched on its path', async (t) => {
  const app = await startBackend(t, 'app');
  const paths = await startBackend(t, 'paths');
  const router = await startRouter(t, app.port, [filtered(ALICE, '/api/', ['GET'])], { [ALICE]: paths.port });
  const conn = await openConnection(router.port);
  conn.socket.write(
    'GET http://echo/api/x?y=1 HTTP/1.1\r\nHost: echo\r\n\r\n' +
      'GET http://echo/web?to=/api/ HTTP/1.1\r\nHost: echo\r\n\r\n' +
      'HEAD http://echo/api/x HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n',
  );
  await conn.ended;
  t.strictSame([paths.served, app.served], [['http://echo/api/x?y=1'], ['http://echo/web?to=/api/', 'http://echo/api/x']], 'the path decides; a HEAD is not a GET');
  t.match(conn.received(), /^HTTP\/1\.1 200 /);
});

t.test('h2c: streams routed by :path prefix and :method, with the same rules as HTTP/1', async (t) => {
  const h2Backend = async (name: string) => {
    const served: string[] = [];
    const server = createH2Server();
    server.on('stream', (stream: ServerHttp2Stream, headers) => {
      served.push(`${String(headers[':method'])} ${String(headers[':path'])}`);
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.end(name);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return { port: (server.address() as AddressInfo).port, served };
  };
  const app = await h2Backend('app');
  const paths = await h2Backend('paths');
  const posts = await h2Backend('posts');
  const router = await startRouter(t, app.port, [filtered(ALICE, '/api/', []), filtered(BOB, '', ['POST'])], { [ALICE]: paths.port, [BOB]: posts.port });
  const session = connectH2(`http://127.0.0.1:${router.port}`);
  t.teardown(() => session.destroy());
  session.on('error', () => {});
  const call = (method: string, path: string) =>
    new Promise<string>((resolve, reject) => {
      const req = session.request({ ':method': method, ':path': path });
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => resolve(body));
      req.on('error', reject);
      req.end();
    });
  const cases: Array<[string, string, string]> = [
    ['GET', '/api/a?q=1', 'paths'],
    ['POST', '/api/b', 'paths'],
    ['POST', '/orders', 'posts'],
    ['GET', '/orders?next=/api/', 'app'],
    ['PUT', '/orders', 'app'],
    ['GET', '//api/c', 'app'],
  ];
  const results = await Promise.all(cases.map(([method, path]) => call(method, path)));
  t.strictSame(results, cases.map((c) => c[2]), 'each stream answered by its destination');
  t.strictSame([paths.served, posts.served, app.served], [['GET /api/a?q=1', 'POST /api/b'], ['POST /orders'], ['GET /orders?next=/api/', 'PUT /orders', 'GET //api/c']]);
  t.equal(router.forwarder.connectionCount, 1, 'one h2c session');
});
