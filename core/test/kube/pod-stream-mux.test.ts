import { KubeConfig } from '@kubernetes/client-node';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import t, { type Test } from 'tap';
import type { WebSocket } from 'ws';
import { openPodStream, SPDY_TUNNEL_PROTOCOL } from '../../src/kube/pod-stream.js';
import { STREAM_BUFFER_BYTES } from '../../src/kube/spdy-mux.js';
import { controlFrame, dataFrameHeader, FLAG_FIN, FrameReader, MAX_FRAME_PAYLOAD, RST_STREAM, SYN_REPLY, SYN_STREAM } from '../../src/kube/spdy.js';
import { apiServer } from '../fixtures/fake-api-server.js';
import { eventually } from '../fixtures/eventually.js';

/** One stream pair as the pod's side sees it. */
interface PeerStream {
  readonly headers: Record<string, string>;
  readonly dataId: number;
  received: number;
  readonly hash: ReturnType<typeof createHash>;
  fin: boolean;
  reset: boolean;
}

/** The pod side of one SPDY connection: every data stream opened, what came on it, and a way to send on it. */
interface Peer {
  readonly ws: WebSocket;
  readonly streams: PeerStream[];
  send(stream: PeerStream, data: Buffer, fin?: boolean): void;
  reset(stream: PeerStream): void;
}

/** A SPDY port-forward peer on each WebSocket; `onData` sees each data stream's bytes. */
function spdyPods(t: Test, onData: (peer: Peer, stream: PeerStream, data: Buffer) => void = () => undefined): { peers: Peer[]; kc: Promise<KubeConfig> } {
  const peers: Peer[] = [];
  const kc = apiServer(
    t,
    (ws) => {
      const byId = new Map<number, PeerStream>();
      let compressed = Buffer.alloc(0);
      let inflatedBefore = 0;
      const peer: Peer = {
        ws,
        streams: [],
        send: (s, data, fin = false) => {
          for (let at = 0; at < data.length || (at === 0 && fin); at += MAX_FRAME_PAYLOAD) {
            const piece = data.subarray(at, at + MAX_FRAME_PAYLOAD);
            const last = at + MAX_FRAME_PAYLOAD >= data.length;
            // Cut inside the frame header, as the API server may.
            const frame = Buffer.concat([dataFrameHeader(s.dataId, piece.length, fin && last ? FLAG_FIN : 0), piece]);
            ws.send(frame.subarray(0, 5));
            ws.send(frame.subarray(5));
            if (data.length === 0) break;
          }
        },
        reset: (s) => {
          const body = Buffer.alloc(8);
          body.writeUInt32BE(s.dataId, 0);
          body.writeUInt32BE(1, 4);
          ws.send(controlFrame(RST_STREAM, 0, body));
        },
      };
      peers.push(peer);
      const reader = new FrameReader({
        data: (id, payload, fin) => {
          const s = byId.get(id);
          if (s === undefined) return;
          s.received += payload.length;
          s.hash.update(payload);
          if (fin) s.fin = true;
          if (payload.length > 0) onData(peer, s, payload);
        },
        control: (type, _flags, body) => {
          if (type === RST_STREAM) {
            const s = byId.get(body.readUInt32BE(0));
            if (s !== undefined) s.reset = true;
            return;
          }
          if (type !== SYN_STREAM) return;
          const id = body.readUInt32BE(0);
          compressed = Buffer.concat([compressed, body.subarray(10)]);
          const all = inflateRawSync(compressed.subarray(6), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
          const block = all.subarray(inflatedBefore);
          inflatedBefore = all.length;
          const headers: Record<string, string> = {};
          let at = 4;
          for (let i = 0; i < block.readUInt32BE(0); i++) {
            const nl = block.readUInt32BE(at);
            const name = block.subarray(at + 4, at + 4 + nl).toString();
            at += 4 + nl;
            const vl = block.readUInt32BE(at);
            headers[name] = block.subarray(at + 4, at + 4 + vl).toString();
            at += 4 + vl;
          }
          const reply = Buffer.alloc(4);
          reply.writeUInt32BE(id, 0);
          ws.send(controlFrame(SYN_REPLY, 0, reply));
          if (headers.streamtype !== 'data') return;
          const s: PeerStream = { headers, dataId: id, received: 0, hash: createHash('sha256'), fin: false, reset: false };
          byId.set(id, s);
          peer.streams.push(s);
        },
      });
      ws.on('message', (data: Buffer) => {
        try {
          reader.push(data);
        } catch (err: unknown) {
          t.fail(`the client sent something that is not SPDY: ${(err as Error).message}`);
        }
      });
    },
    undefined,
    SPDY_TUNNEL_PROTOCOL,
  );
  return { peers, kc };
}

/** Reads `stream` until `bytes` have come, and their digest. */
async function readAll(stream: Duplex, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  let n = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    if (n >= bytes) break;
  }
  return hash.digest('hex');
}

t.test('many concurrent streams share one connection, each byte-exact both ways', async (t) => {
  // The pod echoes each stream's bytes back on that stream.
  const { peers, kc } = spdyPods(t, (peer, s, data) => peer.send(s, data));
  const config = await kc;
  const count = 32;
  const streams = await Promise.all(Array.from({ length: count }, () => openPodStream(config, 'default', 'web-1', 4000)));
  t.equal(peers.length, 1, 'one WebSocket carries every stream');
  const results = await Promise.all(
    streams.map(async (stream) => {
      const size = 64 * 1024 + Math.floor(Math.random() * 256 * 1024);
      const sent = createHash('sha256');
      const echoed = readAll(stream, size);
      for (let n = 0; n < size; ) {
        const piece = randomBytes(Math.min(size - n, 1 + Math.floor(Math.random() * 40_000)));
        sent.update(piece);
        stream.write(piece);
        n += piece.length;
      }
      return { sent: sent.digest('hex'), echoed: await echoed };
    }),
  );
  for (const [i, r] of results.entries()) t.equal(r.echoed, r.sent, `stream ${i}: its bytes came back unchanged, in order`);
  const peer = peers[0];
  t.equal(peer?.streams.length, count, 'one data stream per forwarded connection');
  t.equal(new Set(peer?.streams.map((s) => s.headers.requestid)).size, count, 'each pair has its own request id');
  t.ok(
    peer?.streams.every((s) => s.headers.port === '4000'),
    'each pair names the port',
  );
  for (const s of streams) s.destroy();
});

t.test('a reset stream fails alone; the others go on, and a stream that ends resets only its own ids', async (t) => {
  const { peers, kc } = spdyPods(t, (peer, s, data) => peer.send(s, data));
  const config = await kc;
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => openPodStream(config, 'default', 'web-1', 4000)));
  if (a === undefined || b === undefined || c === undefined) throw new Error('three streams');
  await eventually(() => peers[0]?.streams.length === 3, 5_000, 'the pod sees three streams');
  const peer = peers[0] as Peer;
  const failed = once(a, 'error').then(([err]) => err as Error);
  peer.reset(peer.streams[0] as PeerStream);
  t.match((await failed).message, /port-forward to default\/web-1:4000: the port-forward stream was reset \(SPDY status 1\)/);
  // b ends on our side: the pod sees its FIN and its reset, and nothing of c's.
  b.end();
  await eventually(() => peer.streams[1]?.fin === true && peer.streams[1]?.reset, 5_000, 'the pod sees the end of b');
  t.equal(peer.streams[2]?.reset, false, 'c is not reset');
  const echoed = readAll(c, 5);
  c.write('after');
  t.equal(await echoed, createHash('sha256').update('after').digest('hex'), 'c still carries bytes both ways');
  t.equal(peers.length, 1, 'on the same connection');
  c.destroy();
});

t.test('a slow reader does not hold up a fast one (up to its allowance), then gets all its bytes', async (t) => {
  const { peers, kc } = spdyPods(t);
  const config = await kc;
  const [slow, fast] = await Promise.all([1, 2].map(() => openPodStream(config, 'default', 'web-1', 4000)));
  if (slow === undefined || fast === undefined) throw new Error('two streams');
  await eventually(() => peers[0]?.streams.length === 2, 5_000, 'the pod sees two streams');
  const peer = peers[0] as Peer;
  const [slowPeer, fastPeer] = peer.streams as [PeerStream, PeerStream];
  // The slow reader reads nothing while its bytes (under its allowance) and the fast one's arrive.
  const slowBytes = randomBytes(STREAM_BUFFER_BYTES / 2);
  const fastBytes = randomBytes(8 * STREAM_BUFFER_BYTES);
  peer.send(slowPeer, slowBytes);
  peer.send(fastPeer, fastBytes);
  t.equal(await readAll(fast, fastBytes.length), createHash('sha256').update(fastBytes).digest('hex'), 'the fast stream got all its bytes while the slow one read none');
  t.equal(slow.readableFlowing, null, 'the slow stream was not read meanwhile');
  t.equal(await readAll(slow, slowBytes.length), createHash('sha256').update(slowBytes).digest('hex'), 'the slow stream gets its bytes when it reads');
  slow.destroy();
  fast.destroy();
});

t.test('a reader past its allowance pauses the connection until it reads; every byte arrives', async (t) => {
  const { peers, kc } = spdyPods(t);
  const config = await kc;
  const [slow, fast] = await Promise.all([1, 2].map(() => openPodStream(config, 'default', 'web-1', 4000)));
  if (slow === undefined || fast === undefined) throw new Error('two streams');
  await eventually(() => peers[0]?.streams.length === 2, 5_000, 'the pod sees two streams');
  const peer = peers[0] as Peer;
  const [slowPeer, fastPeer] = peer.streams as [PeerStream, PeerStream];
  const slowBytes = randomBytes(4 * STREAM_BUFFER_BYTES);
  const fastBytes = randomBytes(STREAM_BUFFER_BYTES);
  peer.send(slowPeer, slowBytes);
  peer.send(fastPeer, fastBytes);
  let fastGot = 0;
  fast.on('data', (c: Buffer) => (fastGot += c.length));
  await eventually(() => slow.readableLength > STREAM_BUFFER_BYTES, 5_000, 'the slow stream holds its allowance');
  t.ok(slow.readableLength < 2 * STREAM_BUFFER_BYTES, `the slow stream holds about its allowance, not all its bytes (${slow.readableLength})`);
  t.ok(fastGot < fastBytes.length, 'the connection is paused behind it');
  t.equal(await readAll(slow, slowBytes.length), createHash('sha256').update(slowBytes).digest('hex'), 'the slow stream gets every byte as it reads');
  await eventually(() => fastGot === fastBytes.length, 5_000, 'the fast stream gets the rest');
  slow.destroy();
  fast.destroy();
});

t.test('a connection without streams is closed after the idle time; the next stream opens another', async (t) => {
  const { peers, kc } = spdyPods(t, (peer, s, data) => peer.send(s, data));
  const config = await kc;
  const a = await openPodStream(config, 'default', 'web-2', 4000, { idleCloseMs: 100 });
  const b = await openPodStream(config, 'default', 'web-2', 4000);
  t.equal(peers.length, 1, 'two streams, one connection');
  let closed = false;
  (peers[0] as Peer).ws.on('close', () => (closed = true));
  a.destroy();
  const echoed = readAll(b, 2);
  b.write('ok');
  await echoed;
  t.equal(closed, false, 'a connection with a stream stays open');
  b.end();
  await eventually(() => closed, 5_000, 'the idle connection is closed');
  const c = await openPodStream(config, 'default', 'web-2', 4000, { idleCloseMs: 100 });
  t.equal(peers.length, 2, 'a new stream after that opens a new connection');
  const again = readAll(c, 5);
  c.write('again');
  t.equal(await again, createHash('sha256').update('again').digest('hex'));
  c.destroy();
});

t.test('a broken connection fails all its streams with its error', async (t) => {
  const { peers, kc } = spdyPods(t);
  const config = await kc;
  const streams = await Promise.all([1, 2, 3].map(() => openPodStream(config, 'default', 'web-3', 4000)));
  await eventually(() => peers[0]?.streams.length === 3, 5_000, 'the pod sees three streams');
  const errors = streams.map((s) => once(s, 'error').then(([err]) => err as Error));
  // Not SPDY: a control frame of version 2.
  (peers[0] as Peer).ws.send(Buffer.from([0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]));
  for (const err of await Promise.all(errors)) t.match(err.message, /port-forward to default\/web-3:4000: the peer speaks SPDY version 2, not 3/);
  const next = await openPodStream(config, 'default', 'web-3', 4000);
  t.equal(peers.length, 2, 'the next stream opens a new connection');
  next.destroy();
});

t.test('a connection cut inside a frame fails all its streams', async (t) => {
  const { peers, kc } = spdyPods(t);
  const config = await kc;
  const streams = await Promise.all([1, 2].map(() => openPodStream(config, 'default', 'web-4', 4000)));
  await eventually(() => peers[0]?.streams.length === 2, 5_000, 'the pod sees two streams');
  const errors = streams.map((s) => once(s, 'error').then(([err]) => err as Error));
  const peer = peers[0] as Peer;
  peer.ws.send(dataFrameHeader((peer.streams[0] as PeerStream).dataId, 100));
  peer.ws.send(Buffer.from('only part'));
  peer.ws.terminate();
  for (const err of await Promise.all(errors)) t.match(err.message, /port-forward to default\/web-4:4000: the connection ended inside a SPDY frame/);
});

t.test('streams to another port of the pod, or with another kubeconfig, open a connection of their own', async (t) => {
  const { peers, kc } = spdyPods(t);
  const config = await kc;
  const a = await openPodStream(config, 'default', 'web-5', 4000);
  const b = await openPodStream(config, 'default', 'web-5', 4000);
  t.equal(peers.length, 1, 'the same port: one connection');
  const c = await openPodStream(config, 'default', 'web-5', 4001);
  t.equal(peers.length, 2, 'another port: another connection');
  const other = new KubeConfig();
  other.loadFromString(config.exportConfig());
  const d = await openPodStream(other, 'default', 'web-5', 4000);
  t.equal(peers.length, 3, 'another kubeconfig: another connection');
  await eventually(() => peers[2]?.streams.length === 1, 5_000, 'the last connection carries its stream');
  t.equal(peers[1]?.streams[0]?.headers.port, '4001', 'the stream names its port');
  for (const s of [a, b, c, d]) s.destroy();
});
