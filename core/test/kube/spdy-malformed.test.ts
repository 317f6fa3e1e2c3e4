/**
 * The SPDY port-forward client (pod-stream.ts over ws-client.ts) fed frames no kubelet sends,
 * over real TCP sockets: a raw server answers the WebSocket upgrade with the SPDY tunnel and
 * writes crafted bytes. Each fails the stream once with a port-forward error, the connection is
 * dropped, and nothing after the bad frame is passed on. A SPDY frame cut short by the end of the
 * tunnel fails the stream too, rather than passing for a clean end.
 */
import t, { type Test } from 'tap';
import { openPodStream, SPDY_TUNNEL_PROTOCOL } from '../../src/kube/pod-stream.js';
import { controlFrame, dataFrameHeader, FLAG_FIN, GOAWAY, PING, RST_STREAM, SETTINGS, WINDOW_UPDATE } from '../../src/kube/spdy.js';
import { kubeConfigFor, rawWebSocketServer, wsFrame } from '../fixtures/ws-raw-server.js';

const CASE_TIMEOUT_MS = 3_000;
const DATA = 3;

const binary = (bytes: Buffer): Buffer => wsFrame(0x82, bytes);
const data = (id: number, text: string, flags = 0): Buffer => Buffer.concat([dataFrameHeader(id, text.length, flags), Buffer.from(text, 'latin1')]);
const after = data(DATA, 'AFTER');

interface Case {
  readonly name: string;
  /** The WebSocket bytes the server writes after the upgrade. */
  readonly bytes: Buffer;
  /** Then: a WebSocket close frame and the end of TCP ('close'), only the end of TCP ('eof'), or nothing. */
  readonly then?: 'close' | 'eof';
  readonly error: RegExp;
}

function withVersion(frame: Buffer, version: number): Buffer {
  frame.writeUInt16BE(0x8000 | version, 0);
  return frame;
}

const cases: Case[] = [
  { name: 'a control frame of SPDY/2, with data behind it', bytes: binary(Buffer.concat([withVersion(controlFrame(PING, 0, Buffer.alloc(4)), 2), after])), error: /SPDY version 2, not 3/ },
  { name: 'a data frame on stream 0', bytes: binary(Buffer.concat([data(0, 'x'), after])), error: /data frame on stream 0/ },
  { name: 'a control frame of type 0', bytes: binary(controlFrame(0, 0, Buffer.alloc(4))), error: /control frame of type 0/ },
  { name: 'a PING of 5 bytes', bytes: binary(Buffer.concat([controlFrame(PING, 0, Buffer.alloc(5)), after])), error: /type 6 with 5 bytes, not 4/ },
  { name: 'an RST_STREAM of 4 bytes', bytes: binary(controlFrame(RST_STREAM, 0, Buffer.alloc(4))), error: /type 3 with 4 bytes, not 8/ },
  { name: 'a GOAWAY of 0 bytes', bytes: binary(controlFrame(GOAWAY, 0, Buffer.alloc(0))), error: /type 7 with 0 bytes, not 8/ },
  { name: 'a WINDOW_UPDATE of 12 bytes', bytes: binary(controlFrame(WINDOW_UPDATE, 0, Buffer.alloc(12))), error: /type 9 with 12 bytes, not 8/ },
  { name: 'a SETTINGS frame with half an entry', bytes: binary(controlFrame(SETTINGS, 0, Buffer.alloc(8))), error: /SETTINGS frame of 8 bytes/ },
  { name: 'a SPDY header split across messages, then a bad version', bytes: Buffer.concat([binary(Buffer.from([0x80, 0x04])), binary(Buffer.from([0, 6, 0, 0, 0, 4, 0, 0, 0, 0]))]), error: /SPDY version 4, not 3/ },
  { name: 'a masked WebSocket frame carrying good SPDY', bytes: Buffer.concat([wsFrame(0x82, data(DATA, 'x'), Buffer.from([1, 2, 3, 4])), binary(after)]), error: /masked WebSocket frame/ },
  { name: 'half a SPDY data frame, then a WebSocket close', bytes: binary(data(DATA, 'hello').subarray(0, 10)), then: 'close', error: /ended inside a SPDY frame/ },
  { name: 'half a SPDY frame header, then EOF', bytes: binary(data(DATA, 'hello').subarray(0, 5)), then: 'eof', error: /ended inside a SPDY frame/ },
  { name: 'half a WebSocket frame, then EOF', bytes: binary(data(DATA, 'hello')).subarray(0, 8), then: 'eof', error: /ended inside a WebSocket frame/ },
];

interface Outcome {
  errors: Error[];
  received: string;
  ended: boolean;
  closed: boolean;
  serverSawClose: boolean;
}

async function run(t: Test, bytes: Buffer, then?: 'close' | 'eof'): Promise<Outcome> {
  let serverClosed: Promise<void> = Promise.resolve();
  const url = await rawWebSocketServer(t, SPDY_TUNNEL_PROTOCOL, (peer) => {
    serverClosed = new Promise((resolve) => peer.socket.once('close', () => resolve()));
    peer.socket.write(bytes);
    if (then === 'close') peer.socket.end(wsFrame(0x88, Buffer.from([0x03, 0xe8])));
    else if (then === 'eof') peer.socket.end();
  });
  const stream = await openPodStream(kubeConfigFor(url), 'default', 'web-1', 4000);
  const o: Outcome = { errors: [], received: '', ended: false, closed: false, serverSawClose: false };
  stream.on('data', (chunk: Buffer) => (o.received += chunk.toString('latin1')));
  stream.on('end', () => (o.ended = true));
  stream.on('error', (err) => o.errors.push(err));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, CASE_TIMEOUT_MS)));
  await Promise.race([new Promise<void>((resolve) => stream.once('close', () => resolve())).then(() => (o.closed = true)), timeout]);
  if (o.closed) await Promise.race([serverClosed.then(() => (o.serverSawClose = true)), timeout]);
  clearTimeout(timer);
  if (!o.closed) stream.destroy();
  return o;
}

for (const c of cases) {
  t.test(c.name, async (t) => {
    const o = await run(t, c.bytes, c.then);
    t.equal(o.errors.length, 1, 'one error');
    t.match(o.errors[0], { code: 'port-forward-failed', message: /^port-forward to default\/web-1:4000: / }, 'a port-forward error');
    t.match(o.errors[0]?.message ?? '', c.error, 'naming what was wrong');
    t.notOk(o.ended, 'not a clean end');
    t.ok(o.closed, `the stream closes within ${CASE_TIMEOUT_MS} ms`);
    t.ok(o.serverSawClose, 'the TCP connection is dropped');
    t.notMatch(o.received, /AFTER/, 'nothing after the bad frame is passed on');
  });
}

t.test('good SPDY cut across WebSocket messages anywhere ends cleanly with all its data', async (t) => {
  const spdy = Buffer.concat([controlFrame(PING, 0, Buffer.from([0, 0, 0, 2])), data(DATA, 'hel'), data(1, '', FLAG_FIN), data(DATA, 'lo', FLAG_FIN)]);
  const messages: Buffer[] = [];
  for (let at = 0, n = 1; at < spdy.length; at += n, n = (n % 7) + 1) messages.push(binary(spdy.subarray(at, at + n)));
  const o = await run(t, Buffer.concat(messages), 'close');
  t.same(o.errors, [], 'no error');
  t.equal(o.received, 'hello', 'the data stream, whole');
  t.ok(o.ended, 'a clean end');
});

t.test("data after the data stream's FIN, or after a GOAWAY, is not passed on and is no error", async (t) => {
  for (const [what, spdy] of [
    ['FIN', Buffer.concat([data(DATA, 'hel', FLAG_FIN), after])],
    ['GOAWAY', Buffer.concat([data(DATA, 'hel'), controlFrame(GOAWAY, 0, Buffer.alloc(8)), after])],
  ] as const) {
    const o = await run(t, binary(spdy), 'close');
    t.same(o.errors.map(String), [], `${what}: no error`);
    t.equal(o.received, 'hel', `${what}: the data before it only`);
    t.ok(o.ended, `${what}: a clean end`);
  }
});
