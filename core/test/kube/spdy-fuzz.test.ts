/**
 * The SPDY frame reader under seeded random input: valid streams decode the same however they
 * are cut, and garbage (random bytes, or valid streams with bytes changed, cut short or spliced
 * in) ends in one SpdyProtocolError or a clean decode: never a second error, another kind of
 * exception, a callback after the error, or a loop that does not end.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { openPodStream, SPDY_TUNNEL_PROTOCOL } from '../../src/kube/pod-stream.js';
import {
  controlFrame,
  dataFrameHeader,
  FrameReader,
  GOAWAY,
  HEADERS,
  PING,
  RST_STREAM,
  SETTINGS,
  SpdyProtocolError,
  SYN_REPLY,
  SYN_STREAM,
  WINDOW_UPDATE,
} from '../../src/kube/spdy.js';
import { mutate, Random, randomSplit } from '../fixtures/fuzz-random.js';
import { kubeConfigFor, rawWebSocketServer, wsFrame } from '../fixtures/ws-raw-server.js';

const SEED = 0x5eed_0002;
const VALID_CASES = 4_000;
const SPLITS_PER_VALID = 4;
const GARBAGE_CASES = 20_000;
const CASE_BUDGET_MS = 500;

/** A data frame's payload so far (pieces joined) with its stream and FIN, or a control frame. */
type Event = ['data', number, string, boolean] | ['control', number, number, string];

interface Decoded {
  events: Event[];
  errors: Error[];
  callbackAfterError: boolean;
}

/** Feeds `pieces` to a fresh reader, then ends it; see ws-client-fuzz.test.ts for what escapes. */
function decode(pieces: readonly Buffer[]): Decoded {
  const out: Decoded = { events: [], errors: [], callbackAfterError: false };
  const total = pieces.reduce((n, p) => n + p.length, 0);
  let calls = 0;
  /** The last event is a data frame still arriving (pieces join until its last one). */
  let open = false;
  const called = (): void => {
    if (out.errors.length > 0) out.callbackAfterError = true;
    if (++calls > total + 1) throw new Error(`${calls} callbacks for ${total} bytes: the reader loops`);
  };
  const reader = new FrameReader({
    data: (id, payload, fin) => {
      called();
      const last = out.events.at(-1);
      if (open && last?.[0] === 'data' && last[1] === id) {
        last[2] += payload.toString('hex');
        last[3] = fin;
      } else out.events.push(['data', id, payload.toString('hex'), fin]);
      // The reader calls back with fin=false for every piece but the last of a frame; the test
      // can only join pieces, not see frame ends, so a frame's end shows where another event starts.
      open = true;
    },
    control: (type, flags, body) => {
      called();
      open = false;
      out.events.push(['control', type, flags, body.toString('hex')]);
    },
  });
  const guarded = (step: () => void): void => {
    try {
      step();
    } catch (err: unknown) {
      if (!(err instanceof SpdyProtocolError)) throw err;
      out.errors.push(err);
    }
  };
  for (const piece of pieces) guarded(() => reader.push(piece));
  guarded(() => reader.end());
  return out;
}

const SIZES = [0, 1, 7, 8, 100, 4096, 70000];

/** A valid stream of frames; consecutive data frames go to different streams so that each stays one event. */
function validStream(random: Random): { bytes: Buffer; events: Event[] } {
  const frames: Buffer[] = [];
  const events: Event[] = [];
  let lastId = 0;
  for (let f = 0, n = random.int(8); f < n; f++) {
    if (random.next() < 0.5) {
      let id = 1 + random.int(9);
      if (id === lastId) id++;
      lastId = id;
      const size = random.next() < 0.05 ? random.pick(SIZES) : random.pick(SIZES.slice(0, 5));
      const payload = random.bytes(size);
      const fin = random.next() < 0.3;
      frames.push(dataFrameHeader(id, size, fin ? 1 : 0), payload);
      events.push(['data', id, payload.toString('hex'), fin]);
      continue;
    }
    lastId = 0;
    const type = random.pick([SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE, 5, 10, 0x7fff]);
    const size =
      type === PING ? 4
      : type === RST_STREAM || type === GOAWAY || type === WINDOW_UPDATE ? 8
      : type === SETTINGS ? 4 + 8 * random.int(3)
      : type === SYN_STREAM ? 10 + random.int(40)
      : type === SYN_REPLY || type === HEADERS ? 4 + random.int(40)
      : random.int(20);
    const flags = random.int(256);
    const body = random.bytes(size);
    frames.push(controlFrame(type, flags, body));
    events.push(['control', type, flags, body.toString('hex')]);
  }
  return { bytes: Buffer.concat(frames), events };
}

function timed<T>(what: () => T): { value: T; ms: number } {
  const started = process.hrtime.bigint();
  const value = what();
  return { value, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

t.test(`${VALID_CASES} valid streams decode as made, in one piece and in ${SPLITS_PER_VALID} random cuttings each`, async (t) => {
  const random = new Random(SEED);
  let mismatches = 0;
  let slowest = 0;
  const started = Date.now();
  for (let i = 0; i < VALID_CASES; i++) {
    const stream = validStream(random);
    const expected = JSON.stringify(stream.events);
    const cuttings = [[stream.bytes], ...Array.from({ length: SPLITS_PER_VALID }, () => randomSplit(random, stream.bytes))];
    for (const [s, pieces] of cuttings.entries()) {
      const { value: got, ms } = timed(() => decode(pieces));
      slowest = Math.max(slowest, ms);
      if (got.errors.length > 0 || JSON.stringify(got.events) !== expected) {
        mismatches++;
        if (mismatches === 1) t.fail(`case ${i}, cutting ${s}: another decoding`, { errors: got.errors.map(String), got: got.events, expected: stream.events });
      }
    }
  }
  t.equal(mismatches, 0, 'every cutting decodes as made');
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
  t.ok(kinds.size >= 5, `the failures are of many kinds (${kinds.size})`);
  t.comment(`${GARBAGE_CASES} garbage cases in ${Date.now() - started} ms; ${[...kinds].map(([k, n]) => `${n}× ${k}`).join('; ')}`);
});

const SOCKET_CASES = 150;

t.test(`${SOCKET_CASES} garbage SPDY streams over real sockets: the port-forward closes within ${CASE_BUDGET_MS * 4} ms, with at most one error`, async (t) => {
  const random = new Random(SEED + 2);
  let script: (socket: Socket) => void = () => undefined;
  const url = await rawWebSocketServer(t, SPDY_TUNNEL_PROTOCOL, (peer) => script(peer.socket));
  const kc = kubeConfigFor(url);
  const tally = { clean: 0, failed: 0 };
  let bad = 0;
  let slowest = 0;
  for (let i = 0; i < SOCKET_CASES; i++) {
    const bytes = i % 2 === 0 ? random.bytes(random.int(300)) : mutate(random, validStream(random).bytes);
    // Each piece a WebSocket message, as the API server cuts the SPDY stream anywhere; then a close.
    const messages = randomSplit(random, bytes).map((p) => wsFrame(0x82, p));
    script = (socket) => {
      const write = (k: number): void => {
        if (k === messages.length) socket.end(wsFrame(0x88, Buffer.from([0x03, 0xe8])));
        else socket.write(messages[k]!, () => write(k + 1));
      };
      write(0);
    };
    const stream = await openPodStream(kc, 'default', 'web-1', 4000);
    const errors: Error[] = [];
    stream.on('data', () => undefined);
    stream.on('error', (err) => errors.push(err));
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      new Promise<boolean>((resolve) => stream.once('close', () => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CASE_BUDGET_MS * 4))),
    ]);
    clearTimeout(timer);
    if (!closed) stream.destroy();
    slowest = Math.max(slowest, Date.now() - started);
    if (!closed || errors.length > 1 || errors.some((e) => (e as { code?: string }).code !== 'port-forward-failed')) {
      bad++;
      if (bad === 1) t.fail(`case ${i}: closed ${closed}, errors ${errors.map(String).join('; ')}`, { bytes: bytes.toString('hex') });
    }
    if (errors.length === 0) tally.clean++;
    else tally.failed++;
  }
  t.equal(bad, 0, 'every port-forward closed, with at most one error');
  t.comment(`${SOCKET_CASES} port-forwards: ${tally.failed} failed, ${tally.clean} ended cleanly; the slowest took ${slowest} ms`);
});
