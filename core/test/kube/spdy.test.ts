import t from 'tap';
import { inflateRawSync } from 'node:zlib';
import { controlFrame, dataFrameHeader, FLAG_FIN, FrameReader, HeaderBlockEncoder, PING, SYN_STREAM, synStreamFrame } from '../../src/kube/spdy.js';

type Seen = ['data', number, string, boolean] | ['control', number, number, string];

function reader(): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    seen,
    reader: new FrameReader({
      data: (id, payload, fin) => seen.push(['data', id, payload.toString(), fin]),
      control: (type, flags, body) => seen.push(['control', type, flags, body.toString('hex')]),
    }),
  };
}

t.test('frames cut anywhere are read whole: data pieces pass on as they come, control frames gathered', async (t) => {
  const id = Buffer.from([0, 0, 0, 7]);
  const bytes = Buffer.concat([
    dataFrameHeader(3, 5),
    Buffer.from('hello'),
    controlFrame(PING, 0, id),
    dataFrameHeader(1, 0, FLAG_FIN),
    dataFrameHeader(3, 3, FLAG_FIN),
    Buffer.from('end'),
  ]);
  // Byte by byte: every boundary falls inside something.
  const r = reader();
  for (let i = 0; i < bytes.length; i++) r.reader.push(bytes.subarray(i, i + 1));
  const text = r.seen
    .filter((s) => s[0] === 'data' && s[1] === 3)
    .map((s) => s[2])
    .join('');
  t.equal(text, 'helloend', 'the data arrives in order');
  t.same(
    r.seen.filter((s) => s[0] === 'control'),
    [['control', PING, 0, '00000007']],
    'the ping is read whole',
  );
  t.same(r.seen.filter((s) => s[0] === 'data' && s[3]).map((s) => s[1]), [1, 3], 'FIN is reported on the last piece of each ending frame');
  // In one piece: one callback per frame.
  const whole = reader();
  whole.reader.push(bytes);
  t.same(whole.seen, [
    ['data', 3, 'hello', false],
    ['control', PING, 0, '00000007'],
    ['data', 1, '', true],
    ['data', 3, 'end', true],
  ]);
});

t.test('a control frame of another SPDY version is refused', async (t) => {
  const frame = controlFrame(PING, 0, Buffer.alloc(4));
  frame.writeUInt16BE(0x8002, 0);
  t.throws(() => reader().reader.push(frame), /SPDY version 2, not 3/);
});

t.test('header blocks are one zlib stream naming the SPDY dictionary, in stored blocks any inflater reads', async (t) => {
  const encoder = new HeaderBlockEncoder();
  const first = encoder.encode([
    ['StreamType', 'error'],
    ['port', '8080'],
  ]);
  const second = encoder.encode([['streamtype', 'data']]);
  t.equal(first.readUInt16BE(0) % 31, 0, 'the zlib header checks');
  t.equal(first[1]! & 0x20, 0x20, 'it names a preset dictionary');
  t.equal(first.readUInt32BE(2), 0xe3c6a7c2, "by the SPDY/3 dictionary's Adler-32");
  t.equal(second[0], 0, 'the second block continues the stream: no zlib header, a stored block');
  const inflated = inflateRawSync(Buffer.concat([first.subarray(6), second]), { finishFlush: 2 });
  const expect = (pairs: Array<[string, string]>): Buffer => {
    const parts: Buffer[] = [Buffer.from([0, 0, 0, pairs.length])];
    for (const [n, v] of pairs) {
      const u = (s: string): Buffer => Buffer.concat([Buffer.from([0, 0, 0, s.length]), Buffer.from(s)]);
      parts.push(u(n), u(v));
    }
    return Buffer.concat(parts);
  };
  t.same(
    inflated,
    Buffer.concat([
      expect([
        ['streamtype', 'error'],
        ['port', '8080'],
      ]),
      expect([['streamtype', 'data']]),
    ]),
    'names lower-cased, each a length and its bytes',
  );
  t.equal(first.subarray(-5).toString('hex'), '000000ffff', 'each block ends as a sync flush does');
});

t.test('a SYN_STREAM carries its stream id and the block', async (t) => {
  const block = Buffer.from('block');
  const frame = synStreamFrame(3, block);
  const r = reader();
  r.reader.push(frame);
  t.same(r.seen, [['control', SYN_STREAM, 0, Buffer.concat([Buffer.from([0, 0, 0, 3, 0, 0, 0, 0, 0, 0]), block]).toString('hex')]]);
  t.throws(() => dataFrameHeader(3, 0x1000000), /at most 16777215 bytes/);
});
