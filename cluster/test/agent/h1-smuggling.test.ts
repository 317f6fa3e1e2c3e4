/**
 * Requests whose framing two HTTP parsers could read differently (RFC 9112 6.1, 6.3), and other
 * malformed heads and chunked bodies, sent to the HTTP/1 proxy over real sockets: each gets the
 * agent's 400, the connection ends, and the app never receives the request whole (no smuggled
 * request reaches it). Requests that are odd but unambiguous still pass.
 */
import t, { type Test } from 'tap';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { proxyHttp1 } from '../../src/agent/h1-proxy.js';
import { closeServer, listenLocal } from './helpers.js';

/** The requests an app received whole: method, target and body. */
interface Seen {
  readonly line: string;
  readonly body: string;
}

async function recordingApp(t: Test): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ line: `${req.method} ${req.url}`, body });
      res.end(`ok ${req.url}`);
    });
  });
  const port = await listenLocal(server);
  t.teardown(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  return { port, seen };
}

async function proxy(t: Test, appPort: number): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    sockets.add(socket);
    void proxyHttp1(socket, Buffer.alloc(0), {
      destinationFor: () => undefined,
      connect: () => connect({ host: '127.0.0.1', port: appPort, allowHalfOpen: true }),
      onRequest: () => undefined,
      onProblem: () => undefined,
    });
  });
  const port = await listenLocal(server);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return closeServer(server);
  });
  return port;
}

/**
 * Sends `bytes` and leaves our side open; resolves with what came back once the proxy ended its
 * side (a FIN: it reads nothing more), or after `ms` (a proxy that waits for more, as one that
 * missed the error would).
 */
function send(port: number, bytes: string, ms = 2_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, ms);
    const ended = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed: true });
    };
    socket.on('end', ended);
    socket.on('close', ended);
    socket.write(bytes, 'latin1');
  });
}

const H = 'Host: app\r\n';
const post = (headers: string, body: string): string => `POST /bad HTTP/1.1\r\n${H}${headers}\r\n${body}`;
/** What a smuggler puts in a body: a whole second request for the app to read. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n';
const chunked = (sizeLine: string, data = 'abc', rest = '\r\n0\r\n\r\n'): string => post('Transfer-Encoding: chunked\r\n', `${sizeLine}\r\n${data}${rest}`);

const rejected: Array<[string, string, RegExp]> = [
  ['CL.TE: Content-Length, then Transfer-Encoding', post(`Content-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n`, `0\r\n\r\n${SMUGGLED}`), /both Transfer-Encoding and Content-Length/],
  ['TE.CL: Transfer-Encoding, then Content-Length', post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`), /both Transfer-Encoding and Content-Length/],
  ['both, the coding in capitals', post('content-length: 5\r\nTRANSFER-ENCODING: Chunked\r\n', '0\r\n\r\n'), /both/],
  ['both, with a Transfer-Encoding that is not chunked', post('Transfer-Encoding: gzip\r\nContent-Length: 3\r\n', 'abc'), /both/],
  ['two different Content-Lengths', post('Content-Length: 3\r\nContent-Length: 40\r\n', `abc${SMUGGLED}`), /more than one Content-Length/],
  ['two equal Content-Lengths', post('Content-Length: 3\r\nContent-Length: 3\r\n', 'abc'), /more than one Content-Length/],
  ['a Content-Length list', post('Content-Length: 3, 3\r\n', 'abc'), /invalid Content-Length/],
  ['an empty Content-Length', post('Content-Length: \r\n', SMUGGLED), /invalid Content-Length/],
  ['a signed Content-Length', post('Content-Length: +3\r\n', 'abc'), /invalid Content-Length/],
  ['a hexadecimal Content-Length', post('Content-Length: 0x3\r\n', 'abc'), /invalid Content-Length/],
  ['a Content-Length with a space inside', post('Content-Length: 3 3\r\n', 'abc'), /invalid Content-Length/],
  ['a final coding that is not chunked', post('Transfer-Encoding: gzip\r\n', 'abc'), /transfer coding is not chunked/],
  ['chunked, then gzip', post('Transfer-Encoding: chunked, gzip\r\n', '3\r\nabc\r\n0\r\n\r\n'), /transfer coding is not chunked/],
  ['identity', post('Transfer-Encoding: identity\r\n', ''), /transfer coding is not chunked/],
  ['chunked twice, in two fields', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'), /chunked twice/],
  ['a chunk size with letters after it', chunked('3x'), /malformed chunk size/],
  ['a negative chunk size', chunked('-3'), /malformed chunk size/],
  ['a chunk size in 0x form', chunked('0x3'), /malformed chunk size/],
  ['a space after the chunk size', chunked('3 '), /malformed chunk size/],
  ['a tab after the chunk size', chunked('3\t'), /malformed chunk size/],
  ['a space before a chunk extension', chunked('3 ;a=b'), /malformed chunk size/],
  ['a chunk extension with a space in it', chunked('3;a b'), /malformed chunk size/],
  ['an empty chunk size', chunked(''), /malformed chunk size/],
  ['a chunk size past 2^64', chunked('1ffffffffffffffff'), /chunk size too large/],
  ['a chunk size line ending with a bare LF', post('Transfer-Encoding: chunked\r\n', '3\nabc\r\n0\r\n\r\n'), /does not end with CRLF/],
  ['chunk data not followed by CRLF', chunked('3', 'abcd'), /chunk longer than its size/],
  ['a malformed trailer', chunked('3', 'abc', '\r\n0\r\nnot a field\r\n\r\n'), /malformed header line/],
  ['whitespace before the colon', `GET /bad HTTP/1.1\r\nHost : app\r\n\r\n`, /malformed header line/],
  ['a tab before the colon', `GET /bad HTTP/1.1\r\n${H}Content-Length\t: 3\r\n\r\nabc`, /malformed header line/],
  ['an obsolete line folding', `GET /bad HTTP/1.1\r\n${H}X-A: one\r\n two\r\n\r\n`, /malformed header line/],
  ['a folded Transfer-Encoding', `POST /bad HTTP/1.1\r\n${H}X-A: x\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc`, /malformed header line/],
  ['a header line without a colon', `GET /bad HTTP/1.1\r\n${H}oops\r\n\r\n`, /malformed header line/],
  ['an empty header name', `GET /bad HTTP/1.1\r\n${H}: x\r\n\r\n`, /malformed header line/],
  ['lines ending with bare LFs', 'GET /bad HTTP/1.1\nHost: app\n\n', /does not end with CRLF/],
  ['a bare CR in a header value', `GET /bad HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, /does not end with CRLF/],
  ['a NUL in a header value', `GET /bad HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, /control character in the value of X-A/],
  ['a DEL in a header value', `GET /bad HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, /control character/],
  ['a control character in the target', `GET /b\x01d HTTP/1.1\r\n${H}\r\n`, /not an HTTP\/1.x request line/],
  ['a byte past ASCII in the target', `GET /b\xe9d HTTP/1.1\r\n${H}\r\n`, /not an HTTP\/1.x request line/],
  ['an HTTP/1.1 request without Host', 'GET /bad HTTP/1.1\r\nX-A: b\r\n\r\n', /without Host/],
];

for (const [name, bytes, why] of rejected) {
  t.test(`${name}: a 400, the end of the connection, nothing of it at the app`, async (t) => {
    const app = await recordingApp(t);
    const port = await proxy(t, app.port);
    // A good request first: it is answered, then the bad one is refused.
    const { text, closed } = await send(port, `GET /first HTTP/1.1\r\n${H}\r\n${bytes}`);
    t.match(text, /^HTTP\/1\.1 200 OK[\s\S]*ok \/firstHTTP\/1\.1 400 Bad Request\r\n/, 'the earlier request answered, then a 400');
    t.match(text, /connection: close\r\n/i, 'saying the connection closes');
    t.match(text, why, 'naming what was wrong');
    t.ok(closed, 'the proxy ends the connection');
    t.same(
      app.seen.map((s) => s.line),
      ['GET /first'],
      'the app received only the good request',
    );
  });
}

t.test('odd but unambiguous requests pass, framed as node frames them', async (t) => {
  const app = await recordingApp(t);
  const port = await proxy(t, app.port);
  const requests = [
    post('Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'),
    post('Transfer-Encoding: Chunked\r\n', '3;name=value;q="a \\"b\\";c"\r\nabc\r\n00\r\nX-Trailer: t\r\n\r\n'),
    post('Content-Length:  003 \r\n', 'abc'),
    // Empty lines before a request line are skipped.
    `\r\n\r\nGET  /spaced  HTTP/1.1\r\n${H}X-Tab: a\tb\xe9\r\n\r\n`,
    post('Transfer-Encoding: chunked\r\n', `0000000000000003\r\nabc\r\n0\r\n\r\n`),
  ];
  const { text } = await send(port, `${requests.join('')}GET /last HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.notMatch(text, /400 Bad Request/, 'no 400');
  t.same(app.seen, [
    // node decodes the chunked coding and leaves gzip to the app.
    { line: 'POST /bad', body: 'abc' },
    { line: 'POST /bad', body: 'abc' },
    { line: 'POST /bad', body: 'abc' },
    { line: 'GET /spaced', body: '' },
    { line: 'POST /bad', body: 'abc' },
    { line: 'GET /last', body: '' },
  ]);
});

t.test('a chunked HTTP/1.0 request is answered, then the connection ends even with keep-alive', async (t) => {
  const app = await recordingApp(t);
  const port = await proxy(t, app.port);
  const { text, closed } = await send(port, `POST /old HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`);
  t.match(text, /ok \/old/);
  t.ok(closed, 'the connection ends after it');
  t.same(
    app.seen.map((s) => s.line),
    ['POST /old'],
    'the request after it is not read',
  );
});
