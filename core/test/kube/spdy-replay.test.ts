/**
 * What a real kube-apiserver (through its kubelet and containerd) sent on a SPDY port-forward,
 * recorded by core/test/fixtures/spdy-record.ts: the replies to our two streams, an HTTP response
 * on the data stream, and both streams' ends, in the WebSocket messages they came in (one of them
 * cuts a frame header). Replayed to the frame reader and, over a real TCP socket, to the client.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { openPodStream, SPDY_TUNNEL_PROTOCOL } from '../../src/kube/pod-stream.js';
import { FrameReader, SYN_REPLY, SYN_STREAM } from '../../src/kube/spdy.js';
import { eventually } from '../fixtures/eventually.js';
import { kubeConfigFor, rawWebSocketServer, wsFrame } from '../fixtures/ws-raw-server.js';

interface Recording {
  readonly recordedFrom: string;
  readonly subprotocol: string;
  readonly request: string;
  readonly pieces: readonly string[];
}

const recording = JSON.parse(readFileSync(new URL('../fixtures/spdy-apiserver-portforward.json', import.meta.url), 'utf8')) as Recording;
const pieces = recording.pieces.map((hex) => Buffer.from(hex, 'hex'));
const all = Buffer.concat(pieces);

type Event = ['control', number, string] | ['data', number, string, boolean];

function read(chunks: readonly Buffer[]): Event[] {
  const events: Event[] = [];
  const reader = new FrameReader({
    control: (type, _flags, body) => events.push(['control', type, body.toString('hex')]),
    data: (id, payload, fin) => {
      const last = events.at(-1);
      if (last?.[0] === 'data' && last[1] === id && !last[3]) {
        last[2] += payload.toString('latin1');
        last[3] = fin;
      } else events.push(['data', id, payload.toString('latin1'), fin]);
    },
  });
  for (const c of chunks) reader.push(c);
  reader.end();
  return events;
}

t.test(`the recording (${recording.recordedFrom}) reads the same in its messages, whole, and byte by byte`, async (t) => {
  t.equal(recording.subprotocol, SPDY_TUNNEL_PROTOCOL);
  const asRecorded = read(pieces);
  t.same(read([all]), asRecorded, 'whole');
  t.same(
    read(Array.from(all, (_, i) => all.subarray(i, i + 1))),
    asRecorded,
    'byte by byte',
  );
  const replies = asRecorded.filter((e): e is ['control', number, string] => e[0] === 'control');
  t.same(
    replies.map((e) => [e[1], Buffer.from(e[2], 'hex').readUInt32BE(0)]),
    [
      [SYN_REPLY, 3],
      [SYN_REPLY, 1],
    ],
    'a SYN_REPLY for each of our streams',
  );
  const block = Buffer.from(replies[0]![2], 'hex').subarray(4);
  t.equal(block.readUInt16BE(0) % 31, 0, "the peer's header block starts a zlib stream");
  t.equal(block.readUInt32BE(2), 0xe3c6a7c2, 'naming the SPDY/3 dictionary, as spdy.ts says');
  const data = asRecorded.filter((e): e is ['data', number, string, boolean] => e[0] === 'data');
  const response = data.find((e) => e[1] === 3);
  t.match(response?.[2], /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n/, 'the pod answered on the data stream');
  const length = Number(/content-length: (\d+)/i.exec(response?.[2] ?? '')?.[1]);
  t.equal(response?.[2].split('\r\n\r\n')[1]?.length, length, 'the whole body');
  t.ok(response?.[3], 'the data stream ends');
  t.ok(data.some((e) => e[1] === 1 && e[3]), 'the error stream ends, empty');
  t.notOk(data.some((e) => e[1] === 1 && e[2] !== ''), 'no error');
});

t.test('the client, fed the recording over TCP, opens both streams and passes the response on', async (t) => {
  let clientBytes: Buffer[] = [];
  const url = await rawWebSocketServer(t, SPDY_TUNNEL_PROTOCOL, (peer) => {
    clientBytes = peer.received;
    for (const p of pieces) peer.socket.write(wsFrame(0x82, p));
    peer.socket.end(wsFrame(0x88, Buffer.from([0x03, 0xe8])));
  });
  const stream = await openPodStream(kubeConfigFor(url), 'default', 'echo', 8080);
  stream.write(recording.request);
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('latin1')));
  const errors: Error[] = [];
  stream.on('error', (err) => errors.push(err));
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  t.same(errors, [], 'no error');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\S/, 'the response, as recorded');
  t.equal(text, read(pieces).find((e) => e[0] === 'data' && e[1] === 3)?.[2]);
  // The client's WebSocket frames carry an all-zero mask: their payloads are the SPDY bytes.
  const opened = (): number[] => {
    const sent = Buffer.concat(clientBytes);
    const spdy: Buffer[] = [];
    for (let at = 0; at + 2 <= sent.length; ) {
      const len7 = sent[at + 1]! & 0x7f;
      const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      const length = len7 === 126 ? sent.readUInt16BE(at + 2) : len7 === 127 ? Number(sent.readBigUInt64BE(at + 2)) : len7;
      const start = at + 2 + ext + 4;
      if ((sent[at]! & 0x0f) === 0x2 && start + length <= sent.length) spdy.push(sent.subarray(start, start + length));
      at = start + length;
    }
    return read(spdy)
      .filter((e) => e[0] === 'control' && e[1] === SYN_STREAM)
      .map((e) => Buffer.from(e[2], 'hex').readUInt32BE(0));
  };
  // The server may read the client's frames after the client has gone.
  await eventually(() => opened().length >= 2, 5_000, "the client's SYN_STREAMs").catch(() => undefined);
  t.same(opened(), [1, 3], 'the client opened the error stream, then the data stream');
});
