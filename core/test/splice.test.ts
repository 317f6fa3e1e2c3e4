import { Duplex } from 'node:stream';
import t from 'tap';
import { splice } from '../src/splice.js';
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
