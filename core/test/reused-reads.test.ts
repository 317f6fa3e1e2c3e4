import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { DirectStream } from '../src/direct-stream.js';
import { readIntoReusedBuffer } from '../src/reused-reads.js';
import { splice, spliceSocketOptions } from '../src/splice.js';

/** A listening server on loopback and a connected pair: [accepted, connected]. */
async function socketPair(t: Test, options: net.ServerOpts = {}): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true, ...options });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'connection');
  const connected = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true, ...options });
  await once(connected, 'connect');
  const [socket] = (await accepted) as [net.Socket];
  t.teardown(() => {
    socket.destroy();
    connected.destroy();
  });
  return [socket, connected];
}

/**
 * Reads `s` to its end, pausing after every `every` pieces, so that writers towards it queue and
 * what it buffered waits; resolves with the count and digest of what it read.
 */
function slowDigest(s: Readable, every = 8): Promise<{ bytes: number; sha: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let reads = 0;
  s.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    if (++reads % every === 0) {
      s.pause();
      setTimeout(() => s.resume(), 2);
    }
  });
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve({ bytes, sha: hash.digest('hex') }));
    s.once('error', reject);
  });
}

/** A direct tunnel's frame: the payload's length, then the payload. */
function frame(payload: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payload.length, 0);
  return Buffer.concat([length, payload]);
}

/**
 * Writes `count` data frames of random sizes up to `max` bytes and then the end frame, cutting
 * every `split`-th frame inside its length so that it arrives across reads; the count and
 * digest of the payloads.
 */
function sendFrames(peer: net.Socket, count: number, max: number, split = 0): { bytes: number; sha: string } {
  const hash = createHash('sha256');
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const payload = randomBytes(1 + Math.floor(Math.random() * max));
    hash.update(payload);
    bytes += payload.length;
    const framed = frame(payload);
    if (split > 0 && i % split === 0) {
      peer.write(framed.subarray(0, 2));
      peer.write(framed.subarray(2));
    } else {
      peer.write(framed);
    }
  }
  peer.write(Buffer.alloc(4));
  return { bytes, sha: hash.digest('hex') };
}

/** Writes `total` random bytes to `s` and ends it; the digest of what was written. */
function sendRandom(s: net.Socket, total: number): string {
  const hash = createHash('sha256');
  for (let sent = 0; sent < total; ) {
    const piece = randomBytes(Math.min(total - sent, 1 + Math.floor(Math.random() * 200_000)));
    hash.update(piece);
    s.write(piece);
    sent += piece.length;
  }
  s.end();
  return hash.digest('hex');
}

t.test('a splice between sockets reads into reused buffers and passes every byte intact under backpressure', async (t) => {
  // client -> [a | splice | b] -> server, the way the agent passes a connection to the app. With
  // a window larger than a read, b takes more while a write is still queued: the reads it
  // refers to must not be overwritten.
  const [a, client] = await socketPair(t, spliceSocketOptions);
  const [server, b] = await socketPair(t, { highWaterMark: 4 * 1024 * 1024 });
  const views = new Set<ArrayBufferLike>();
  const write = (chunk: Buffer): boolean => net.Socket.prototype.write.call(b, chunk);
  b.write = ((chunk: Buffer) => {
    views.add(chunk.buffer);
    return write(chunk);
  });
  const done = splice(a, b);
  t.equal(a.listenerCount('data'), 0, 'a reads into a buffer of its own, not through data events');
  const received = slowDigest(server);
  const total = 24 * 1024 * 1024;
  const sent = sendRandom(client, total);
  const got = await received;
  t.strictSame(got, { bytes: total, sha: sent }, 'every byte arrived, in order, unchanged');
  server.end();
  client.resume();
  const result = await done;
  t.equal(result.aToB, total);
  t.ok(views.size > 0 && views.size < result.aToB / (256 * 1024), `reads shared buffers (${views.size} for ${result.aToB} bytes)`);
});

t.test('a socket whose writes finish at once grows its buffer by reads that fill it, then keeps it', async (t) => {
  const [a, client] = await socketPair(t);
  const buffers = new Map<ArrayBufferLike, number>();
  let bytes = 0;
  t.ok(
    readIntoReusedBuffer(a, {
      data: (view) => {
        buffers.set(view.buffer, (buffers.get(view.buffer) ?? 0) + 1);
        bytes += view.length;
        return true;
      },
      pending: () => 0,
    }),
  );
  client.end(Buffer.alloc(8 * 1024 * 1024, 1));
  await once(a, 'end');
  t.equal(bytes, 8 * 1024 * 1024);
  const sizes = [...buffers.keys()].map((b) => b.byteLength / 1024);
  t.strictSame(sizes, [16, 32, 64, 128, 256], 'KiB: doubled up to 256');
  t.ok((buffers.get([...buffers.keys()][4]!) ?? 0) > 1, 'the largest one was read into again and again');
});

t.test('a connection of small messages keeps a small buffer', async (t) => {
  const [a, client] = await socketPair(t);
  const buffers = new Set<ArrayBufferLike>();
  let reads = 0;
  let arrived = (): void => undefined;
  readIntoReusedBuffer(a, {
    data: (view) => {
      buffers.add(view.buffer);
      reads++;
      arrived();
      return true;
    },
    pending: () => 0,
  });
  for (let i = 0; i < 20; i++) {
    const read = new Promise<void>((resolve) => (arrived = resolve));
    client.write(`request ${i}`);
    await read;
  }
  client.end();
  await once(a, 'end');
  t.ok(reads >= 2, `several reads (${reads})`);
  t.strictSame([...buffers].map((b) => b.byteLength), [16 * 1024], 'one 16 KiB buffer');
});

t.test('a socket already read by someone else, or one over TLS, is left as it is', async (t) => {
  const [a, client] = await socketPair(t);
  const sink = { data: () => true, pending: () => Infinity };
  const seen: Buffer[] = [];
  a.on('data', (chunk: Buffer) => seen.push(chunk));
  t.notOk(readIntoReusedBuffer(a, sink), 'refused: a data listener');
  client.write('still read the usual way');
  await once(a, 'data');
  t.equal(Buffer.concat(seen).toString(), 'still read the usual way');

  const [b, client2] = await socketPair(t);
  b.pause();
  client2.write('buffered');
  await new Promise<void>((resolve) => b.once('readable', () => resolve()));
  t.notOk(readIntoReusedBuffer(b, sink), 'refused: bytes nobody consumed yet');
  t.equal(String(b.read() as Buffer), 'buffered');

  const tlsLike = Object.assign(new net.Socket(), { encrypted: true });
  t.notOk(readIntoReusedBuffer(tlsLike, sink), 'refused: a TLS socket');
});

t.test('a direct stream over a socket passes frames from reused reads intact to a slow reader', async (t) => {
  const [raw, peer] = await socketPair(t, spliceSocketOptions);
  const [out, reader] = await socketPair(t, spliceSocketOptions);
  const stream = new DirectStream(raw);
  t.equal(raw.listenerCount('data'), 0, 'the stream reads its socket into a reused buffer');
  const done = splice(stream, out);
  const received = slowDigest(reader);
  // The peer's side of the framing, written by hand: a header, data frames of all sizes, the end.
  peer.write(frame(Buffer.from(JSON.stringify({ session: 's1' }))));
  t.same(JSON.parse((await stream.header).toString()), { session: 's1' });
  const sent = sendFrames(peer, 400, 100_000, 7);
  t.strictSame(await received, sent, 'every byte arrived, in order, unchanged');
  stream.end();
  reader.end();
  peer.on('data', () => undefined);
  peer.end();
  const result = await done;
  t.equal(result.aToB, sent.bytes);
});

t.test('a direct stream over a socket tells how much of what was written it still holds', async (t) => {
  const [raw] = await socketPair(t);
  const stream = new DirectStream(raw);
  t.equal(stream.pendingWriteBytes, 0);
  const other = new DirectStream(new PassThrough());
  t.equal(other.pendingWriteBytes, undefined, 'unknown over a stream that cannot tell it');
  stream.destroy();
  other.destroy();
});

t.test('a direct stream over a socket keeps intact what it buffered for a reader that pauses', async (t) => {
  const [raw, peer] = await socketPair(t, spliceSocketOptions);
  const stream = new DirectStream(raw);
  // The reader below hashes each piece as it comes and keeps none: all that may still refer to
  // bytes of a read is what the stream itself buffered.
  stream.setHolder(() => 0);
  peer.write(frame(Buffer.from(JSON.stringify({ session: 's1' }))));
  await stream.header;
  // Small frames, many to a read: most of them wait in the stream while its reader pauses.
  const sent = sendFrames(peer, 300, 3000);
  t.strictSame(await slowDigest(stream, 5), sent, 'every byte arrived, in order, unchanged');
  stream.destroy();
});
