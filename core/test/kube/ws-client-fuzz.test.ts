/**
 * The WebSocket frame reader under seeded random input: valid streams decode the same however
 * they are cut, and garbage (random bytes, or valid streams with bytes changed, cut short or
 * spliced in) ends in one WsProtocolError or a clean decode: never a second error, another kind
 * of exception, a callback after the error, or a loop that does not end.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { connectWebSocket, WsFrameReader, WsProtocolError } from '../../src/kube/ws-client.js';
import { mutate, Random, randomSplit } from '../fixtures/fuzz-random.js';
import { rawWebSocketServer, wsFrame } from '../fixtures/ws-raw-server.js';

const SEED = 0x5eed_0001;
const VALID_CASES = 4_000;
const SPLITS_PER_VALID = 4;
const GARBAGE_CASES = 20_000;
/** No case may take longer than this (they take well under a millisecond each). */
const CASE_BUDGET_MS = 500;

type Event = ['start'] | ['bytes', string] | ['control', number, string];

interface Decoded {
  events: Event[];
  /** The WsProtocolErrors thrown, by push or end. */
  errors: Error[];
  /** A callback came after the reader had thrown. */
  callbackAfterError: boolean;
}

/**
 * Feeds `pieces` to a fresh reader, then ends it. Anything thrown that is not a WsProtocolError
 * escapes (and fails the test); so does a reader that calls back more often than it could have
 * frames, which is how a reader looping on one header shows.
 */
function decode(pieces: readonly Buffer[]): Decoded {
  const out: Decoded = { events: [], errors: [], callbackAfterError: false };
  const total = pieces.reduce((n, p) => n + p.length, 0);
  let calls = 0;
  const called = (): void => {
    if (out.errors.length > 0) out.callbackAfterError = true;
    // Every callback consumes at least one byte of a header: more calls than bytes is a loop.
    if (++calls > total + 1) throw new Error(`${calls} callbacks for ${total} bytes: the reader loops`);
  };
  const reader = new WsFrameReader({
    data: (piece, start) => {
      called();
      if (start) out.events.push(['start']);
      const last = out.events.at(-1);
      if (last?.[0] === 'bytes') last[1] += piece.toString('hex');
      else out.events.push(['bytes', piece.toString('hex')]);
    },
    control: (opcode, body) => {
      called();
      out.events.push(['control', opcode, body.toString('hex')]);
    },
  });
  const guarded = (step: () => void): void => {
    try {
      step();
    } catch (err: unknown) {
      if (!(err instanceof WsProtocolError)) throw err;
      out.errors.push(err);
    }
  };
  for (const piece of pieces) guarded(() => reader.push(piece));
  guarded(() => reader.end());
  return out;
}

const LENGTHS = [0, 1, 2, 5, 125, 126, 127, 300, 65535, 65536, 70000];

/** A valid server stream: messages in 1-3 frames, pings and pongs between them, maybe a close at the end. */
function validStream(random: Random): { bytes: Buffer; messages: string[]; controls: string[] } {
  const frames: Buffer[] = [];
  const messages: string[] = [];
  const controls: string[] = [];
  const control = (): void => {
    const opcode = random.pick([0x9, 0xa]);
    const body = random.bytes(random.pick([0, 1, 4, 125]));
    frames.push(wsFrame(0x80 | opcode, body));
    controls.push(`${opcode}:${body.toString('hex')}`);
  };
  for (let m = 0, n = random.int(5); m < n; m++) {
    if (random.next() < 0.3) control();
    const isText = random.next() < 0.3;
    // Large payloads are rare, so that the run stays fast.
    const size = random.next() < 0.05 ? random.pick(LENGTHS) : random.pick(LENGTHS.slice(0, 8));
    const payload = isText ? Buffer.from('é€😀a'.repeat(Math.ceil(size / 10)).slice(0, size), 'utf8') : random.bytes(size);
    // Fragments cut anywhere, even inside a UTF-8 character.
    const cuts = [0, ...Array.from({ length: random.int(3) }, () => random.int(payload.length + 1)).sort((a, b) => a - b), payload.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const first = i === 0;
      const fin = i + 2 === cuts.length;
      frames.push(wsFrame((fin ? 0x80 : 0) | (first ? (isText ? 0x1 : 0x2) : 0x0), payload.subarray(cuts[i], cuts[i + 1])));
      if (!fin && random.next() < 0.3) control();
    }
    if (payload.length > 0) messages.push(payload.toString('hex'));
  }
  if (random.next() < 0.5) {
    const body = random.next() < 0.5 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye', 'utf8')]);
    frames.push(wsFrame(0x88, body));
    controls.push(`8:${body.toString('hex')}`);
  }
  return { bytes: Buffer.concat(frames), messages, controls };
}

function timed<T>(what: () => T): { value: T; ms: number } {
  const started = process.hrtime.bigint();
  const value = what();
  return { value, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

t.test(`${VALID_CASES} valid streams decode the same in one piece and in ${SPLITS_PER_VALID} random cuttings each`, async (t) => {
  const random = new Random(SEED);
  let mismatches = 0;
  let slowest = 0;
  const started = Date.now();
  for (let i = 0; i < VALID_CASES; i++) {
    const stream = validStream(random);
    const whole = decode([stream.bytes]);
    const messages = whole.events.filter((e) => e[0] !== 'control').reduce<string[]>((acc, e) => (e[0] === 'start' ? [...acc, ''] : [...acc.slice(0, -1), `${acc.at(-1) ?? ''}${e[1]}`]), []);
    const controls = whole.events.filter((e) => e[0] === 'control').map((e) => `${e[1]}:${e[2]}`);
    if (whole.errors.length > 0 || JSON.stringify([messages, controls]) !== JSON.stringify([stream.messages, stream.controls])) {
      mismatches++;
      if (mismatches === 1) t.fail(`case ${i}: the whole stream did not decode as made`, { errors: whole.errors.map(String), messages, expected: stream.messages });
    }
    for (let s = 0; s < SPLITS_PER_VALID; s++) {
      const { value: cut, ms } = timed(() => decode(randomSplit(random, stream.bytes)));
      slowest = Math.max(slowest, ms);
      if (cut.errors.length > 0 || JSON.stringify(cut.events) !== JSON.stringify(whole.events)) {
        mismatches++;
        if (mismatches === 1) t.fail(`case ${i}, cutting ${s}: another decoding`, { errors: cut.errors.map(String) });
      }
    }
  }
  t.equal(mismatches, 0, 'every cutting decodes as the whole');
  t.ok(slowest < CASE_BUDGET_MS, `the slowest case took ${slowest.toFixed(1)} ms (budget ${CASE_BUDGET_MS})`);
  t.comment(`${VALID_CASES * (1 + SPLITS_PER_VALID)} decodings in ${Date.now() - started} ms`);
});

t.test(`${GARBAGE_CASES} garbage streams end in one protocol error or a clean decode`, async (t) => {
  const random = new Random(SEED + 1);
  const tally = { clean: 0, failed: 0 };
  const kinds = new Map<string, number>();
  let bad = 0;
  let slowest = 0;
  const started = Date.now();
  for (let i = 0; i < GARBAGE_CASES; i++) {
    const bytes = i % 2 === 0 ? random.bytes(random.int(300)) : mutate(random, validStream(random).bytes);
    const { value: got, ms } = timed(() => decode(randomSplit(random, bytes)));
    slowest = Math.max(slowest, ms);
    if (got.errors.length > 1 || got.callbackAfterError) {
      bad++;
      if (bad === 1) t.fail(`case ${i}: ${got.errors.length} errors, callback after error: ${got.callbackAfterError}`, { bytes: bytes.toString('hex') });
    }
    if (got.errors.length === 0) tally.clean++;
    else {
      tally.failed++;
      const kind = got.errors[0]!.message.replace(/\d+/g, 'N');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  }
  t.equal(bad, 0, 'never a second error nor a callback after one');
  t.ok(slowest < CASE_BUDGET_MS, `the slowest case took ${slowest.toFixed(1)} ms (budget ${CASE_BUDGET_MS})`);
  t.ok(tally.failed > GARBAGE_CASES / 2, `most garbage fails (${tally.failed} failed, ${tally.clean} decoded cleanly)`);
  t.ok(kinds.size >= 8, `the failures are of many kinds (${kinds.size})`);
  t.comment(`${GARBAGE_CASES} garbage cases in ${Date.now() - started} ms; ${[...kinds].map(([k, n]) => `${n}× ${k}`).join('; ')}`);
});

const SOCKET_CASES = 150;

t.test(`${SOCKET_CASES} garbage streams over real sockets: the client closes within ${CASE_BUDGET_MS * 4} ms, with at most one error`, async (t) => {
  const random = new Random(SEED + 2);
  let script: (socket: Socket) => void = () => undefined;
  const url = await rawWebSocketServer(t, 'v4.channel.k8s.io', (peer) => script(peer.socket));
  const tally = { clean: 0, failed: 0 };
  let bad = 0;
  let slowest = 0;
  for (let i = 0; i < SOCKET_CASES; i++) {
    const bytes = i % 2 === 0 ? random.bytes(random.int(300)) : mutate(random, validStream(random).bytes);
    const pieces = randomSplit(random, bytes).filter((p) => p.length > 0);
    // The server writes the pieces one by one, then ends: a client that waits for more after that hangs.
    script = (socket) => {
      const write = (k: number): void => {
        if (k === pieces.length) socket.end();
        else socket.write(pieces[k]!, () => write(k + 1));
      };
      write(0);
    };
    const ws = await connectWebSocket(url, { requestOptions: {}, protocols: ['v4.channel.k8s.io'], timeoutMs: 5_000 });
    const errors: Error[] = [];
    ws.on('data', () => undefined);
    ws.on('error', (err) => {
      errors.push(err);
      if (errors.length > 3) throw new Error(`'error' emitted ${errors.length} times`);
    });
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const gone = new Promise<boolean>((resolve) => ws.once('close', () => resolve(true)));
    ws.start();
    const closed = await Promise.race([gone, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CASE_BUDGET_MS * 4)))]);
    clearTimeout(timer);
    if (!closed) ws.terminate();
    slowest = Math.max(slowest, Date.now() - started);
    if (!closed || errors.length > 1 || errors.some((e) => !(e instanceof WsProtocolError))) {
      bad++;
      if (bad === 1) t.fail(`case ${i}: closed ${closed}, errors ${errors.map(String).join('; ')}`, { bytes: bytes.toString('hex') });
    }
    if (errors.length === 0) tally.clean++;
    else tally.failed++;
  }
  t.equal(bad, 0, 'every connection closed, with at most one protocol error');
  t.comment(`${SOCKET_CASES} connections: ${tally.failed} failed, ${tally.clean} ended cleanly; the slowest took ${slowest} ms`);
});
