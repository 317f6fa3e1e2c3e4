import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { COPY_HEADER_BYTES, COPY_KIND, COPY_MAX_PAYLOAD, CopyFrameReader, encodeCopyFrame } from '../src/copy-frames.js';
import { serveCopies } from '../src/daemon/copies.js';

t.test('frames survive any split of the byte stream; long pieces are cut at the payload limit', (t) => {
  const long = Buffer.alloc(COPY_MAX_PAYLOAD + 10, 7);
  const bytes = Buffer.concat([encodeCopyFrame(1, COPY_KIND.data, Buffer.from('abc')), encodeCopyFrame(2, COPY_KIND.data, long), encodeCopyFrame(1, COPY_KIND.end), encodeCopyFrame(0xfffffffe, COPY_KIND.failed, Buffer.from('why'))]);
  t.equal(bytes.length, 3 + long.length + 3 + 5 * COPY_HEADER_BYTES, 'the long piece took two frames');
  for (const step of [1, 7, 4096, bytes.length]) {
    const reader = new CopyFrameReader();
    const frames = [];
    for (let at = 0; at < bytes.length; at += step) frames.push(...reader.push(bytes.subarray(at, at + step)));
    t.strictSame(
      frames.map((f) => [f.connection, f.kind, f.payload.length]),
      [
        [1, COPY_KIND.data, 3],
        [2, COPY_KIND.data, COPY_MAX_PAYLOAD],
        [2, COPY_KIND.data, 10],
        [1, COPY_KIND.end, 0],
        [0xfffffffe, COPY_KIND.failed, 3],
      ],
      `pieces of ${step}`,
    );
  }
  t.end();
});

t.test('a frame no side sends is refused', (t) => {
  const bad = encodeCopyFrame(1, COPY_KIND.data);
  bad.writeUInt8(9, 4);
  t.throws(() => new CopyFrameReader().push(bad), /unknown frame kind 9/);
  const huge = encodeCopyFrame(1, COPY_KIND.data);
  huge.writeUInt32BE(COPY_MAX_PAYLOAD + 1, 5);
  t.throws(() => new CopyFrameReader().push(huge), /more than/);
  t.end();
});

t.test('the workstation end: a local connection per copy, answers dropped here, how each ended sent back', async (t) => {
  const got: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('end', () => {
      got.push(text);
      socket.end('an answer nobody gets');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as AddressInfo).port;
  const toWorkstation = new PassThrough();
  const fromWorkstation = new PassThrough();
  const served = serveCopies(Duplex.from({ readable: toWorkstation, writable: fromWorkstation }), port, () => {});
  const replies = new CopyFrameReader();
  const seen: Array<[number, number]> = [];
  fromWorkstation.on('data', (piece: Buffer) => seen.push(...replies.push(piece).map((f): [number, number] => [f.connection, f.kind])));
  toWorkstation.write(encodeCopyFrame(1, COPY_KIND.data, Buffer.from('first ')));
  toWorkstation.write(encodeCopyFrame(2, COPY_KIND.data, Buffer.from('second')));
  toWorkstation.write(encodeCopyFrame(1, COPY_KIND.data, Buffer.from('copy')));
  toWorkstation.write(encodeCopyFrame(1, COPY_KIND.end));
  toWorkstation.write(encodeCopyFrame(2, COPY_KIND.end));
  while (seen.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  t.strictSame([...seen].sort(), [
    [1, COPY_KIND.done],
    [2, COPY_KIND.done],
  ], 'only how each ended comes back, not the answers');
  t.strictSame([...got].sort(), ['first copy', 'second']);
  toWorkstation.end();
  await served;
});
