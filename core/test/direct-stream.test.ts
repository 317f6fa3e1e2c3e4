import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import t from 'tap';
import { DirectStream, DirectStreamError, parseHeader } from '../src/direct-stream.js';

/** Two DirectStreams over a real loopback TCP connection. */
async function pair(): Promise<{ a: DirectStream; b: DirectStream; rawA: net.Socket; rawB: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const rawA = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [rawB] = await accepted;
  server.close();
  return { a: new DirectStream(rawA), b: new DirectStream(rawB), rawA, rawB };
}

function readAll(stream: DirectStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  stream.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

t.test('headers then bytes both ways, with half-close and a clean close of the transport', async (t) => {
  const { a, b, rawA, rawB } = await pair();
  a.sendHeader({ session: 's-1' });
  t.same(parseHeader(await b.header), { session: 's-1' });
  b.sendHeader({ interceptId: 'i-1', source: '10.0.0.1:5000' });
  t.same(parseHeader(await a.header), { interceptId: 'i-1', source: '10.0.0.1:5000' });

  const big = randomBytes(5 * 1024 * 1024 + 3);
  const bGot = readAll(b);
  a.end(big);
  // b has the whole of a's data and its end, and can still answer: a half-close.
  t.ok((await bGot).equals(big), 'every byte arrives, in order');
  t.notOk(rawB.destroyed, 'the transport stays open after one side ended');
  const aGot = readAll(a);
  b.end(Buffer.from('answer after the end'));
  t.equal((await aGot).toString(), 'answer after the end');
  await Promise.all([once(rawA, 'close'), once(rawB, 'close')]);
  t.equal(a.errored, null);
  t.equal(b.errored, null);
});

t.test('data and frames split at every byte boundary are reassembled', async (t) => {
  const { PassThrough } = await import('node:stream');
  const raw = new PassThrough();
  const s = new DirectStream(raw);
  const header = Buffer.from(JSON.stringify({ interceptId: 'x', source: 'y' }));
  const payload = Buffer.from('hello, intercepted world');
  const wire = Buffer.concat([len(header.length), header, len(10), payload.subarray(0, 10), len(payload.length - 10), payload.subarray(10), len(0)]);
  const got = readAll(s);
  for (const byte of wire) raw.write(Buffer.from([byte]));
  t.same(parseHeader(await s.header), { interceptId: 'x', source: 'y' });
  t.equal((await got).toString(), payload.toString());
});

t.test('a transport that closes before the header rejects it', async (t) => {
  const { a, b, rawB } = await pair();
  for (const s of [a, b]) s.on('error', () => undefined);
  rawB.destroy();
  await t.rejects(a.header, DirectStreamError);
  if (!a.closed) await once(a, 'close');
  t.ok(a.destroyed, 'the stream is closed too');
});

t.test('a transport that breaks mid-connection fails the stream', async (t) => {
  const { a, b, rawB } = await pair();
  b.on('error', () => undefined);
  a.sendHeader({ session: 's' });
  await b.header;
  b.sendHeader({ interceptId: 'i', source: 's' });
  await a.header;
  const failed = once(a, 'error') as Promise<[Error]>;
  a.resume();
  rawB.destroy();
  const [err] = await failed;
  t.type(err, DirectStreamError);
});

t.test('something that is not a direct tunnel is refused', async (t) => {
  const { PassThrough } = await import('node:stream');
  const raw = new PassThrough();
  const s = new DirectStream(raw);
  s.on('error', () => undefined);
  raw.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  await t.rejects(s.header, /not a direct tunnel: a header of \d+ bytes/);
  t.throws(() => parseHeader(Buffer.from('[1]')), /not a JSON object/);
  t.throws(() => parseHeader(Buffer.from('{')), /not JSON/);
});

function len(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

t.test('chunks written together go to the transport together, one frame each', async (t) => {
  const writes: Buffer[][] = [];
  const raw = new Duplex({
    read() {},
    writev(chunks, cb) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      cb();
    },
  });
  const stream = new DirectStream(raw);
  stream.cork();
  stream.write(Buffer.from('ab'));
  stream.write(Buffer.from('cde'));
  stream.uncork();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(writes.length, 1, 'one write');
  t.same(Buffer.concat(writes[0] ?? []), Buffer.from([0, 0, 0, 2, 0x61, 0x62, 0, 0, 0, 3, 0x63, 0x64, 0x65]), 'each chunk framed by its length');
  stream.destroy();
});
