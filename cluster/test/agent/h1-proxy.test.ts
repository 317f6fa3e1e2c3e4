/**
 * The HTTP/1 proxy of personal intercepts on real sockets, spoken to byte by byte: message
 * framing the router must get right without re-encoding anything (HEAD, 204/304, interim 1xx,
 * bodies that end with the connection, Connection: close, malformed requests).
 */
import t, { type Test } from 'tap';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { MAX_REQUEST_HEAD_BYTES, proxyHttp1 } from '../../src/agent/h1-proxy.js';
import { closeServer, listenLocal, openConnection, until } from './helpers.js';

/** A proxy listening on 127.0.0.1: requests with `x-to: dev` go to `dev`, the rest to `app`. */
async function startProxy(t: Test, ports: { app: number; dev?: number }): Promise<{ port: number; problems: string[]; requests: string[] }> {
  const problems: string[] = [];
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    sockets.add(socket);
    void proxyHttp1(socket, Buffer.alloc(0), {
      destinationFor: ({ headers }) => (headers.some(([n, v]) => n.toLowerCase() === 'x-to' && v === 'dev') ? 'dev' : undefined),
      connect: (destination) => connect({ host: '127.0.0.1', port: destination === 'dev' ? (ports.dev ?? 1) : ports.app, allowHalfOpen: true }),
      onRequest: (method, target, destination) => requests.push(`${method} ${target} -> ${destination ?? 'app'}`),
      onProblem: (message) => problems.push(message),
    });
  });
  const port = await listenLocal(server);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return closeServer(server);
  });
  return { port, problems, requests };
}

async function httpServer(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createHttpServer(handler);
  const port = await listenLocal(server);
  t.teardown(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  return port;
}

/** A raw TCP server: `answer` gets each connection's first chunk and the socket. */
async function rawServer(t: Test, answer: (firstChunk: string, socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', (chunk: Buffer) => answer(chunk.toString('latin1'), socket));
  });
  const port = await listenLocal(server);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return closeServer(server);
  });
  return port;
}

t.test('HEAD, 204 and 304 responses carry no body: the next response on the connection is intact', async (t) => {
  const app = await httpServer(t, (req, res) => {
    if (req.url === '/head') {
      res.writeHead(200, { 'content-length': '5' });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    } else if (req.url === '/204') {
      res.writeHead(204).end();
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"x"' }).end();
    } else {
      res.end(`last ${req.url}`);
    }
  });
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('HEAD /head HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /end HTTP/1.1\r\nHost: a\r\n\r\n');
  await conn.waitFor('last /end');
  const statuses = [...conn.received().matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  t.same(statuses, ['200', '204', '304', '200'], 'four responses, in order');
  t.notMatch(conn.received(), /hello/, 'the HEAD response has no body');
  t.same(proxy.requests, ['HEAD /head -> app', 'GET /204 -> app', 'GET /304 -> app', 'GET /end -> app']);
});

t.test('100 Continue passes through before the final response, and the body follows it', async (t) => {
  const dev = await httpServer(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`dev got ${body}`));
  });
  const proxy = await startProxy(t, { app: 1, dev });
  const conn = await openConnection(proxy.port);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('POST /up HTTP/1.1\r\nHost: a\r\nx-to: dev\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
  await conn.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
  t.notMatch(conn.received(), /dev got/, 'no final response before the body');
  conn.socket.write('data');
  await conn.waitFor('dev got data');
});

t.test('a response delimited by the end of the connection arrives whole, and the connection then ends', async (t) => {
  const app = await rawServer(t, (_req, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'));
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.equal(await conn.ended, 'end', 'the proxy ends the connection');
  t.match(conn.received(), /\r\n\r\nuntil the end$/);
});

t.test('a chunked response with extensions and trailers passes unchanged, and keep-alive goes on', async (t) => {
  const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n';
  const app = await rawServer(t, (_req, socket) => {
    socket.write(chunked.slice(0, 50));
    socket.write(chunked.slice(50));
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond'));
  });
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\n');
  await conn.waitFor('X-Trailer: yes\r\n\r\n');
  t.equal(conn.received(), chunked, 'byte for byte');
  conn.socket.write('GET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
  await conn.waitFor('second');
});

t.test('Connection: close in a response ends the caller\'s connection after it', async (t) => {
  const app = await httpServer(t, (_req, res) => {
    res.setHeader('connection', 'close');
    res.end('bye');
  });
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.equal(await conn.ended, 'end');
  t.match(conn.received(), /bye$/);
});

t.test('an HTTP/1.0 request without keep-alive is answered, then the connection ends', async (t) => {
  const app = await httpServer(t, (_req, res) => res.end('old'));
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.write('GET / HTTP/1.0\r\n\r\n');
  t.equal(await conn.ended, 'end');
  t.match(conn.received(), /^HTTP\/1\.1 200 OK[\s\S]*old$/);
});

t.test('malformed requests get a 400 after the earlier responses, and the connection ends', async (t) => {
  const app = await httpServer(t, (req, res) => res.end(`ok ${req.url}`));
  const proxy = await startProxy(t, { app });
  for (const bad of ['GET / HTTP/9.9\r\n\r\n', 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 'GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n']) {
    const conn = await openConnection(proxy.port);
    conn.socket.write(`GET /first HTTP/1.1\r\nHost: a\r\n\r\n${bad}`);
    t.equal(await conn.ended, 'end', `${JSON.stringify(bad)}: connection ended`);
    t.match(conn.received(), /^HTTP\/1\.1 200 OK[\s\S]*ok \/first(HTTP\/1\.1 400 Bad Request)/, `${JSON.stringify(bad)}: 200, then 400`);
  }
  t.equal(proxy.problems.length, 4, 'each reported');
});

t.test('a request head over the limit gets a 431', async (t) => {
  const app = await httpServer(t, (_req, res) => res.end('never'));
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.write(`GET / HTTP/1.1\r\nX-Big: ${'x'.repeat(MAX_REQUEST_HEAD_BYTES)}\r\n\r\n`);
  t.equal(await conn.ended, 'end');
  t.match(conn.received(), /^HTTP\/1\.1 431 /);
});

t.test('a request body split at every byte reaches its destination whole', async (t) => {
  const dev = await httpServer(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`dev got ${body} ${JSON.stringify(req.trailers['x-t'] ?? '')}`));
  });
  const proxy = await startProxy(t, { app: 1, dev });
  const conn = await openConnection(proxy.port);
  t.teardown(() => conn.socket.destroy());
  const request = 'POST / HTTP/1.1\r\nHost: a\r\nx-to: dev\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: end\r\n\r\n';
  for (const ch of request) conn.socket.write(ch);
  await conn.waitFor('dev got hello world "end"');
});

t.test('a connection the app closes after a response is closed here too, and the next request gets a new one', async (t) => {
  let accepted = 0;
  let closed = 0;
  // Each connection: one response, then the server's FIN; the socket closes once ours comes back.
  const app = await rawServer(t, (request, socket) => {
    accepted++;
    socket.on('close', () => closed++);
    const path = request.split(' ')[1] ?? '';
    socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${3 + path.length}\r\n\r\nhi ${path}`);
  });
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\n');
  await conn.waitFor('hi /1');
  await until(() => closed === 1, 'the app\'s connection closed at both ends');
  conn.socket.write('GET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
  await conn.waitFor('hi /2');
  t.equal(accepted, 2, 'the second request came on a new connection');
});

t.test('a caller that half-closes after whole requests: the FIN goes on, and the answers come back in order, then the end', async (t) => {
  /** A server that answers each connection only once the proxy has passed the caller's FIN on. */
  const answerAtEnd = async (name: string): Promise<number> => {
    const sockets = new Set<Socket>();
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => (got += c));
      socket.on('end', () => {
        const body = `${name} ${got.split(' ')[1] ?? ''}`;
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      });
    });
    const port = await listenLocal(server);
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      return closeServer(server);
    });
    return port;
  };
  const proxy = await startProxy(t, { app: await answerAtEnd('app'), dev: await answerAtEnd('dev') });
  const conn = await openConnection(proxy.port);
  conn.socket.end('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nx-to: dev\r\n\r\n');
  t.equal(await conn.ended, 'end', 'the connection ended after the answers');
  t.match(conn.received(), /^HTTP\/1\.1 200 OK[\s\S]*app \/1HTTP\/1\.1 200 OK[\s\S]*dev \/2$/);
  t.same(proxy.problems, []);
});

t.test("a half-closing caller is answered by node's HTTP server too", async (t) => {
  const app = await httpServer(t, (req, res) => res.end(`node ${req.url}`));
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.end('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
  t.equal(await conn.ended, 'end');
  t.match(conn.received(), /^HTTP\/1\.1 200 OK[\s\S]*node \/1HTTP\/1\.1 200 OK[\s\S]*node \/2$/);
});

t.test('a caller that goes away in the middle of a request body aborts that request upstream', async (t) => {
  let arrived = false;
  let closedEarly = false;
  const app = await httpServer(t, (req) => {
    arrived = true;
    req.resume();
    req.on('error', () => {});
    req.on('close', () => (closedEarly = !req.complete));
  });
  const proxy = await startProxy(t, { app });
  const conn = await openConnection(proxy.port);
  conn.socket.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
  await until(() => arrived, 'the request at the app');
  conn.socket.end();
  await conn.ended;
  await until(() => closedEarly, 'the app saw the request go before its body was complete');
  t.equal(conn.received(), '', 'no answer');
});
