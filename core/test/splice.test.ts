import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import t from 'tap';
import { splice, spliceSocketOptions } from '../src/splice.js';
import { eventually } from './fixtures/eventually.js';

/**
 * A side whose reads the test feeds and whose writes are slow (1 ms per chunk) and counted once
 * done; its large buffer lets many writes wait, as a socket's does.
 */
function side(): Duplex & { written: Buffer[] } {
  const written: Buffer[] = [];
  const d = new Duplex({
    allowHalfOpen: true,
    highWaterMark: 1024 * 1024,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      setTimeout(() => {
        if (!d.destroyed) written.push(chunk);
        cb();
      }, 1);
    },
  });
  return Object.assign(d, { written });
}

t.test('data ends, then its side is torn down: the other side still writes it all, then goes', async (t) => {
  const a = side();
  const b = side();
  const done = splice(a, b);
  const payload = Buffer.alloc(64 * 1024, 7);
  for (let i = 0; i < payload.length; i += 1024) a.push(payload.subarray(i, i + 1024));
  a.push(null);
  a.once('end', () => a.destroy()); // e.g. the tunnel's pair ended right after the peer's close
  const result = await done;
  t.equal(Buffer.concat(b.written).length, payload.length, 'every byte written before b went');
  t.equal(result.aToB, payload.length);
  t.ok(b.destroyed, 'b was closed after flushing');
});

t.test('a side failing mid-stream destroys the other at once and reports the error', async (t) => {
  const a = side();
  const b = side();
  const done = splice(a, b);
  a.push(Buffer.from('partial'));
  await eventually(() => b.written.length > 0, 5_000, 'first bytes through');
  a.destroy(new Error('ECONNRESET'));
  const result = await done;
  t.ok(b.destroyed);
  t.equal(result.error?.message, 'ECONNRESET');
});

t.test('a clean end both ways closes both without error', async (t) => {
  const a = side();
  const b = side();
  const done = splice(a, b);
  a.push(Buffer.from('ping'));
  a.push(null);
  b.push(Buffer.from('pong'));
  b.push(null);
  const result = await done;
  t.strictSame({ aToB: result.aToB, bToA: result.bToA, error: result.error }, { aToB: 4, bToA: 4, error: undefined });
  t.equal(Buffer.concat(b.written).toString(), 'ping');
  t.equal(Buffer.concat(a.written).toString(), 'pong');
});

t.test('what one side delivers in one turn of the event loop reaches a socket in one write', async (t) => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const b = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true, ...spliceSocketOptions });
  await once(b, 'connect');
  const [peer] = (await accepted) as [net.Socket];
  // What the socket hands to the system: one call per write, one or several chunks.
  const writes: number[][] = [];
  const writev = b._writev?.bind(b);
  const write = b._write.bind(b);
  b._writev = (chunks, cb) => {
    writes.push(chunks.map((c) => (c.chunk as Buffer).length));
    writev?.(chunks, cb);
  };
  b._write = (chunk: Buffer, encoding, cb) => {
    writes.push([chunk.length]);
    write(chunk, encoding, cb);
  };
  let received = 0;
  peer.on('data', (chunk: Buffer) => (received += chunk.length));
  const a = side();
  const done = splice(a, b);
  // Four pieces in one turn of the event loop, in two callbacks (as a port-forward stream hands
  // over the pieces of one read), then one more in a later turn.
  a.push(Buffer.alloc(16 * 1024, 1));
  a.push(Buffer.alloc(16 * 1024, 2));
  process.nextTick(() => {
    a.push(Buffer.alloc(16 * 1024, 3));
    a.push(Buffer.alloc(16 * 1024, 4));
  });
  await eventually(() => received === 64 * 1024);
  a.push(Buffer.alloc(10));
  await eventually(() => received === 64 * 1024 + 10);
  t.same(writes, [[16384, 16384, 16384, 16384], [10]], 'four pieces in one write, then a later one on its own');
  a.push(null);
  peer.end();
  await done;
  server.close();
});
