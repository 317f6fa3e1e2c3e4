/**
 * The HTTP/1 proxy's request parser against node:http's as the reference, over real sockets:
 * seeded random pipelines of requests (valid ones with every framing and some odd-but-legal
 * spelling, and a last one that may be subtly invalid) go both straight to a node:http server and
 * through the proxy to another. Where node refuses the stream with a 400, the proxy must answer
 * its own 400, having passed on exactly the valid requests before it; where node takes it, the
 * app behind the proxy must see the same requests (method, target, headers, body, trailers).
 */
import t, { type Test } from 'tap';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { proxyHttp1 } from '../../src/agent/h1-proxy.js';
import { closeServer, listenLocal } from './helpers.js';
// The one seeded generator of the project's fuzz tests.
import { Random } from '../../../core/test/fixtures/fuzz-random.js';

const SEED = 0x4831_0001;
const CASES = 2_000;
/** A case's exchange ends (the peer's FIN after our own) well within this. */
const CASE_TIMEOUT_MS = 3_000;

/** A request as an app sees it through node:http. */
interface View {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly string[];
  readonly body: string;
  readonly trailers: readonly string[];
}

/** A node:http server that records each request it read whole, and each parse error. */
async function recordingServer(t: Test): Promise<{ port: number; seen: View[]; errors: string[] }> {
  const seen: View[] = [];
  const errors: string[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.rawHeaders, body, trailers: req.rawTrailers });
      // A length, so that an HTTP/1.0 keep-alive request's response does not end with the connection.
      res.setHeader('content-length', 2);
      res.end('ok');
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    errors.push(err.code ?? err.message);
    // What node does without a listener.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  const port = await listenLocal(server);
  t.teardown(() => {
    server.closeAllConnections();
    return closeServer(server);
  });
  return { port, seen, errors };
}

async function proxy(t: Test, appPort: number): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
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

/** Writes `pieces` one by one, half-closes, and collects the answer until the peer's FIN (bounded). */
function exchange(port: number, pieces: readonly Buffer[]): Promise<{ text: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    socket.setNoDelay(true);
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => done(true), CASE_TIMEOUT_MS);
    const done = (timedOut: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, timedOut });
    };
    socket.on('end', () => done(false));
    socket.on('close', () => done(false));
    const write = (i: number): void => {
      if (i === pieces.length) {
        socket.end();
        return;
      }
      socket.write(pieces[i]!, () => write(i + 1));
    };
    socket.on('connect', () => write(0));
  });
}

// ---------------------------------------------------------------------------------------------
// The generator

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
const TARGETS = ['/', '/a', '/a/b?x=1&y=%20z', '/caf%C3%A9', 'http://example.com/abs?q', '/a;b,c', '/#frag'];
const NAMES = ['X-A', 'x-b', 'Accept', 'User-Agent', 'X-Forwarded-For', 'Cookie'];

function caseOf(random: Random, name: string): string {
  return random.pick([name, name.toLowerCase(), name.toUpperCase()]);
}

function ows(random: Random): string {
  return random.pick(['', '', ' ', '  ', '\t', ' \t']);
}

/** Around the values of the fields that frame a body node's parser takes spaces only (see h1-proxy.ts). */
function spaces(random: Random): string {
  return random.pick(['', '', ' ', '  ']);
}

function value(random: Random): string {
  const chars = 'abcXYZ019 -_.,;=/"()\t\xe9\xff';
  let v = '';
  for (let i = 0, n = random.int(20); i < n; i++) v += random.pick([...chars]);
  return v.trim();
}

/** Bytes that tempt a parser that loses the body's end: a request inside a body. */
function bodyBytes(random: Random): string {
  const parts = ['x', 'GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n', '\r\n', '0\r\n\r\n', '\xe9', 'abc'];
  let b = '';
  for (let i = 0, n = random.int(6); i < n; i++) b += random.pick(parts);
  return b;
}

interface Made {
  readonly bytes: string;
  /** What node should read: undefined for a request built to be refused. */
  readonly view: View | undefined;
}

type Mutation = (lines: { start: string; headers: string[]; body: string; chunked: boolean; hasLength: boolean }, random: Random) => void;

/** Ways to make a request subtly invalid; node decides whether each is. */
const MUTATIONS: Mutation[] = [
  (m, r) => m.headers.splice(r.int(m.headers.length + 1), 0, `${caseOf(r, 'Transfer-Encoding')}: ${r.pick(['chunked', 'Chunked', 'gzip, chunked'])}`),
  (m, r) => m.headers.splice(r.int(m.headers.length + 1), 0, `${caseOf(r, 'Content-Length')}: ${r.pick(['0', '3', String(m.body.length)])}`),
  (m, r) => m.headers.push(`Transfer-Encoding: ${r.pick(['gzip', 'identity', 'chunked, gzip', 'chunked, chunked', 'chunked', 'x'])}`),
  (m, r) => m.headers.push(`Content-Length: ${r.pick(['+3', '-1', '0x3', '3 3', '', '3, 3', '99999999999999999999', '003'])}`),
  (m, r) => {
    if (m.chunked) m.body = m.body.replace(/^[0-9a-fA-F]+/, (size) => r.pick([`${size}x`, `${size} `, `${size}\t`, `-${size}`, `0x${size}`, `${size} ;a=b`, `${size};a b`, '', `${'f'.repeat(17)}`, `${'0'.repeat(20)}${size}`]));
    else m.headers.push('Content-Length: 1, 2');
  },
  (m, r) => {
    if (m.chunked) m.body = r.pick([m.body.replace('\r\n', '\n'), m.body.replace(/\r\n0/, 'X\r\n0'), m.body.replace(/\r\n\r\n$/, '\r\nbad trailer\r\n\r\n'), m.body.replace(/\r\n\r\n$/, '\n\n')]);
    else m.body += 'GET /extra HTTP/1.1\r\n';
  },
  (m, r) => {
    const i = r.int(m.headers.length);
    m.headers[i] = r.pick([m.headers[i]!.replace(':', ' :'), m.headers[i]!.replace(':', '\t:'), `${m.headers[i]}\r\n folded`, 'no colon here', `: empty name`, `${m.headers[i]}\r\n\tX-Folded: v`]);
  },
  (m, r) => {
    const i = r.int(m.headers.length);
    m.headers[i] = `${m.headers[i]}${r.pick(['\x00', '\x01', '\x7f', '\r', '\x1b'])}x`;
  },
  (m, r) => (m.start = m.start.replace(' HTTP/', `${r.pick(['\x01', '\xe9', ' x', '\x7f'])} HTTP/`)),
  (m) => (m.headers = m.headers.filter((h) => !/^host:/i.test(h))),
  (m, r) => (m.start = r.pick([m.start.replace(' ', '  '), m.start.toLowerCase(), m.start.replace('HTTP/1.1', 'HTTP/1.1 '), `${m.start}\r\n`])),
];

function request(random: Random, mutate: boolean): Made {
  const method = random.pick(METHODS);
  const url = random.pick(TARGETS);
  const old = random.chance(0.1);
  const start = `${method} ${url} HTTP/1.${old ? 0 : 1}`;
  const headers: string[] = [];
  const view: string[] = [];
  const add = (name: string, v: string): void => {
    headers.push(`${name}:${ows(random)}${v}${ows(random)}`);
    view.push(name, v);
  };
  add(caseOf(random, 'Host'), random.pick(['app', 'app:8080', 'example.com']));
  // (node's parser takes `keep-alive` followed by a tab for no keep-alive: no spaces around it.)
  if (old) {
    headers.push('Connection: keep-alive');
    view.push('Connection', 'keep-alive');
  }
  for (let i = 0, n = random.int(4); i < n; i++) add(random.pick(NAMES), value(random));
  let body = '';
  let decoded = '';
  const trailers: string[] = [];
  // Not chunked in HTTP/1.0: the proxy then closes the connection after the request, as RFC 9112
  // 6.1 asks, where node keeps it open (h1-smuggling.test.ts has that case).
  const framing = random.pick(old ? (['none', 'length'] as const) : (['none', 'none', 'length', 'chunked'] as const));
  if (framing === 'length') {
    decoded = bodyBytes(random);
    body = decoded;
    const name = caseOf(random, 'Content-Length');
    const spelled = `${random.chance(0.2) ? '00' : ''}${decoded.length}`;
    headers.push(`${name}:${ows(random)}${spelled}${spaces(random)}`);
    view.push(name, spelled);
  } else if (framing === 'chunked') {
    const name = caseOf(random, 'Transfer-Encoding');
    const coding = random.pick(['chunked', 'Chunked', 'gzip, chunked', 'gzip,chunked']);
    headers.push(`${name}:${ows(random)}${coding}${spaces(random)}`);
    view.push(name, coding);
    for (let i = 0, n = 1 + random.int(3); i < n; i++) {
      const data = bodyBytes(random) || 'z';
      decoded += data;
      const hex = data.length.toString(16);
      const size = `${random.chance(0.2) ? '000' : ''}${random.chance(0.5) ? hex.toUpperCase() : hex}`;
      const ext = random.pick(['', '', ';a', ';a=b', ';a="q s\\"t"', ';a=b;c=d']);
      body += `${size}${ext}\r\n${data}\r\n`;
    }
    body += `${random.pick(['0', '000'])}${random.pick(['', ';e'])}\r\n`;
    if (random.chance(0.3)) {
      body += 'X-Trailer: t\r\n';
      trailers.push('X-Trailer', 't');
    }
    body += '\r\n';
  }
  const lead = random.chance(0.1) ? '\r\n' : '';
  if (!mutate) return { bytes: `${lead}${start}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`, view: { method, url, headers: view, body: decoded, trailers } };
  const m = { start, headers, body, chunked: framing === 'chunked', hasLength: framing === 'length' };
  random.pick(MUTATIONS)(m, random);
  return { bytes: `${m.start}\r\n${m.headers.map((h) => `${h}\r\n`).join('')}\r\n${m.body}`, view: undefined };
}

/** The stream cut at random places, often inside a line. */
function cut(random: Random, bytes: Buffer): Buffer[] {
  if (random.chance(0.3)) return [bytes];
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + (random.chance(0.7) ? random.int(8) : random.int(bytes.length));
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

t.test(`${CASES} seeded pipelines: the proxy refuses what node:http refuses and frames what it takes the same`, async (t) => {
  const direct = await recordingServer(t);
  const app = await recordingServer(t);
  const port = await proxy(t, app.port);
  const random = new Random(SEED);
  const tally = { accepted: 0, rejected: 0, incomplete: 0, requests: 0, bytes: 0 };
  const reasons = new Map<string, number>();
  const failures: string[] = [];
  const started = Date.now();
  let slowest = 0;
  for (let i = 0; i < CASES; i++) {
    const made: Made[] = [];
    for (let k = 0, n = 1 + random.int(3); k < n; k++) made.push(request(random, false));
    if (random.chance(0.6)) made.push(request(random, true));
    const bytes = Buffer.from(made.map((m) => m.bytes).join(''), 'latin1');
    const pieces = cut(random, bytes);
    tally.bytes += bytes.length;
    tally.requests += made.length;
    for (const r of [direct, app]) {
      r.seen.length = 0;
      r.errors.length = 0;
    }
    const caseStarted = Date.now();
    const [reference, ours] = await Promise.all([exchange(direct.port, pieces), exchange(port, pieces)]);
    slowest = Math.max(slowest, Date.now() - caseStarted);
    // Node's refusals: a parse error (not the end of the connection inside a request, nor bytes
    // after a request that closes it), or its server's own 400 (an HTTP/1.1 request without Host).
    const parseErrors = direct.errors.filter((e) => e.startsWith('HPE_') && e !== 'HPE_INVALID_EOF_STATE' && e !== 'HPE_CLOSED_CONNECTION');
    if (direct.errors.length === 0 && /^HTTP\/1\.1 400 Bad Request/m.test(reference.text)) parseErrors.push('400 from the server');
    const oursRefused = /HTTP\/1\.1 400 Bad Request\r\n[\s\S]*traffic-agent: /.test(ours.text);
    const valid = made.filter((m) => m.view !== undefined).map((m) => m.view!);
    const fail = (why: string): void => {
      failures.push(`case ${i}: ${why}\n  sent ${JSON.stringify(bytes.toString('latin1'))}\n  node: ${JSON.stringify(direct.seen)} ${JSON.stringify(direct.errors)}\n  app via proxy: ${JSON.stringify(app.seen)}\n  proxy answered: ${JSON.stringify(ours.text.slice(-300))}`);
    };
    if (ours.timedOut) fail('the proxy did not end the exchange');
    if (reference.timedOut) fail('node did not end the exchange');
    if (parseErrors.length > 0) {
      tally.rejected++;
      reasons.set(parseErrors[0]!, (reasons.get(parseErrors[0]!) ?? 0) + 1);
      if (!oursRefused) fail(`node refused (${parseErrors.join(', ')}), the proxy did not`);
      // The valid requests before the refused one went through, whole, and nothing else did.
      else if (JSON.stringify(app.seen) !== JSON.stringify(valid)) fail('the app did not receive exactly the valid requests before the refused one');
    } else if (direct.seen.length === made.length && !direct.errors.includes('HPE_CLOSED_CONNECTION')) {
      tally.accepted++;
      if (oursRefused) fail('node took the stream, the proxy refused it');
      else if (JSON.stringify(app.seen) !== JSON.stringify(direct.seen)) fail('the app saw other requests than node');
    } else {
      // Node waits for more (a body longer than what came) and sees the end of the connection.
      tally.incomplete++;
      if (JSON.stringify(app.seen) !== JSON.stringify(direct.seen)) fail('the app saw other whole requests than node');
    }
    // The valid requests themselves are the generator's promise: node reads them as made.
    if (parseErrors.length === 0 && direct.seen.length === made.length && made.every((m) => m.view !== undefined) && JSON.stringify(direct.seen) !== JSON.stringify(valid)) {
      fail('node read valid requests otherwise than made (a generator bug)');
    }
    if (failures.length >= 5) break;
  }
  const ms = Date.now() - started;
  t.same(failures, [], 'no difference from node');
  t.ok(tally.rejected > CASES / 10 && tally.accepted > CASES / 10, `both outcomes are covered: ${JSON.stringify(tally)}`);
  t.ok(slowest < CASE_TIMEOUT_MS, `the slowest case took ${slowest} ms`);
  t.comment(`${CASES} cases (${tally.requests} requests, ${tally.bytes} bytes) in ${ms} ms; node's refusals: ${[...reasons].map(([k, n]) => `${n}× ${k}`).join(', ')}`);
});
