/**
 * The WebSocket client fed frames no server may send, over real TCP sockets: every one fails the
 * connection once (one 'error', then 'close'), the client drops the socket itself, and nothing
 * after the bad frame is read. A frame cut short by the end of the connection is an error too.
 */
import t, { type Test } from 'tap';
import { connectWebSocket, type WsConnection } from '../../src/kube/ws-client.js';
import { rawWebSocketServer, wsFrame } from '../fixtures/ws-raw-server.js';

const PROTOCOL = 'v4.channel.k8s.io';
/** Each case ends well within this; a client that hangs fails here instead of at tap's timeout. */
const CASE_TIMEOUT_MS = 3_000;

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const after = wsFrame(0x82, text('AFTER'));

interface Case {
  readonly name: string;
  /** What the server writes after the upgrade, in one write. */
  readonly bytes: Buffer;
  /** The server closes its side after writing (else it keeps the connection open). */
  readonly thenEnd?: boolean;
  readonly error: RegExp;
}

const cases: Case[] = [
  { name: 'a masked frame, with more frames behind it in the same segment', bytes: Buffer.concat([wsFrame(0x82, text('abc'), b(1, 2, 3, 4)), after, after]), error: /masked/ },
  { name: 'a masked frame cut after its first two bytes', bytes: wsFrame(0x82, text('abc'), b(1, 2, 3, 4)).subarray(0, 2), error: /masked/ },
  { name: 'RSV1 set without a negotiated extension', bytes: Buffer.concat([wsFrame(0xc2, text('abc')), after]), error: /reserved bits set \(0x40\)/ },
  { name: 'RSV3 set', bytes: wsFrame(0x92, text('abc')), error: /reserved bits set \(0x10\)/ },
  { name: 'a reserved data opcode', bytes: Buffer.concat([wsFrame(0x83, text('abc')), after]), error: /reserved opcode 3/ },
  { name: 'a reserved control opcode', bytes: wsFrame(0x8b, Buffer.alloc(0)), error: /reserved opcode 11/ },
  { name: 'a 16-bit length for 5 bytes', bytes: Buffer.concat([b(0x82, 126, 0, 5), text('hello'), after]), error: /length of 5 in 16 bits/ },
  { name: 'a 64-bit length for 200 bytes', bytes: Buffer.concat([b(0x82, 127, 0, 0, 0, 0, 0, 0, 0, 200), Buffer.alloc(200)]), error: /length of 200 in 64 bits/ },
  { name: 'a 64-bit length with its top bit set', bytes: b(0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1), error: /most significant bit/ },
  { name: 'a length past 2^53', bytes: b(0x82, 127, 0, 0x40, 0, 0, 0, 0, 0, 0), error: /longer than 2\^53/ },
  { name: 'a ping of 126 bytes', bytes: wsFrame(0x89, Buffer.alloc(126)), error: /control frame over 125 bytes/ },
  { name: 'a close frame of 65536 bytes', bytes: wsFrame(0x88, Buffer.alloc(65536)), error: /control frame over 125 bytes/ },
  { name: 'a fragmented ping', bytes: Buffer.concat([wsFrame(0x09, text('p')), wsFrame(0x80, text('q'))]), error: /fragmented WebSocket control frame/ },
  { name: 'a continuation with no message', bytes: wsFrame(0x80, text('x')), error: /no message to continue/ },
  { name: 'a new message inside a fragmented one', bytes: Buffer.concat([wsFrame(0x02, text('a')), wsFrame(0x82, text('b'))]), error: /new WebSocket message inside a fragmented one/ },
  { name: 'a close frame of 1 byte', bytes: wsFrame(0x88, b(3)), error: /close frame of 1 byte/ },
  { name: 'a close reason that is not UTF-8', bytes: wsFrame(0x88, b(3, 0xe8, 0xff)), error: /close reason that is not UTF-8/ },
  { name: 'a text message that is not UTF-8', bytes: wsFrame(0x81, b(0x61, 0xff)), error: /text message that is not UTF-8/ },
  { name: 'a text message ending inside a character', bytes: Buffer.concat([wsFrame(0x01, b(0xe2, 0x82)), wsFrame(0x80, Buffer.alloc(0))]), error: /text message that is not UTF-8/ },
  { name: 'the first header byte, then EOF', bytes: b(0x82), thenEnd: true, error: /ended inside a WebSocket frame/ },
  { name: 'half of a 16-bit length, then EOF', bytes: b(0x82, 126, 1), thenEnd: true, error: /ended inside a WebSocket frame/ },
  { name: '3 bytes of a 10-byte payload, then EOF', bytes: Buffer.concat([b(0x82, 10), text('abc')]), thenEnd: true, error: /ended inside a WebSocket frame/ },
  { name: 'a first fragment, then EOF', bytes: wsFrame(0x02, text('abc')), thenEnd: true, error: /ended inside a fragmented WebSocket message/ },
];

interface Outcome {
  errors: Error[];
  data: string;
  closed: boolean;
  serverSawClose: boolean;
  ms: number;
}

/** Connects to a raw server that writes `bytes` (then ends when asked), and waits for the client's 'close'. */
async function run(t: Test, bytes: Buffer, thenEnd: boolean): Promise<Outcome> {
  let serverClosed: Promise<unknown> = Promise.resolve();
  const url = await rawWebSocketServer(t, PROTOCOL, (peer) => {
    serverClosed = new Promise<void>((resolve) => peer.socket.once('close', resolve));
    peer.socket.write(bytes);
    if (thenEnd) peer.socket.end();
  });
  const ws: WsConnection = await connectWebSocket(url, { requestOptions: {}, protocols: [PROTOCOL], timeoutMs: CASE_TIMEOUT_MS });
  const outcome: Outcome = { errors: [], data: '', closed: false, serverSawClose: false, ms: 0 };
  const started = Date.now();
  ws.on('data', (piece) => (outcome.data += piece.toString('latin1')));
  ws.on('error', (err) => {
    outcome.errors.push(err);
    // A reader that loops on a bad header emits 'error' again and again, synchronously: the
    // second one breaks the loop, so the test fails instead of hanging.
    if (outcome.errors.length > 3) throw new Error(`'error' emitted ${outcome.errors.length} times`);
  });
  // Not events.once: it would reject on the 'error' this test expects.
  const closed = new Promise<void>((resolve) => ws.once('close', resolve));
  ws.start();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, CASE_TIMEOUT_MS)));
  await Promise.race([closed.then(() => (outcome.closed = true)), timeout]);
  if (outcome.closed) await Promise.race([serverClosed.then(() => (outcome.serverSawClose = true)), timeout]);
  clearTimeout(timer);
  outcome.ms = Date.now() - started;
  if (!outcome.closed) ws.terminate();
  return outcome;
}

for (const c of cases) {
  t.test(c.name, async (t) => {
    const o = await run(t, c.bytes, c.thenEnd === true);
    t.equal(o.errors.length, 1, 'one error');
    t.match(o.errors[0]?.message ?? '', c.error, 'naming what was wrong');
    t.ok(o.closed, `'close' follows within ${CASE_TIMEOUT_MS} ms`);
    t.ok(o.serverSawClose, 'the client dropped the TCP connection');
    t.notMatch(o.data, /AFTER/, 'nothing after the bad frame is read');
  });
}

t.test('clean ends are not errors: a close frame, or EOF between frames', async (t) => {
  for (const [what, bytes, thenEnd] of [
    ['a close frame', Buffer.concat([wsFrame(0x82, text('one')), wsFrame(0x88, b(0x03, 0xe8)), after]), false],
    ['EOF at a frame boundary', Buffer.concat([wsFrame(0x02, text('o')), wsFrame(0x80, text('ne'))]), true],
  ] as const) {
    const o = await run(t, bytes, thenEnd);
    t.same(o.errors, [], `${what}: no error`);
    t.ok(o.closed, `${what}: closed`);
    t.equal(o.data, 'one', `${what}: the data before it arrived, nothing after a close frame`);
  }
});
