import t from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { readProtocol, replaying, sniffProtocol, type Protocol } from '../../src/agent/sniff.js';
import { closeServer, listenLocal } from './helpers.js';

t.test('what the first bytes of a connection say', (t) => {
  const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
  const cases: Array<{ head: string; want: Protocol | undefined }> = [
    { head: '', want: undefined },
    { head: 'G', want: undefined },
    { head: 'GET', want: undefined },
    { head: 'GET ', want: 'http1' },
    { head: 'GET / HTTP/1.1\r\n', want: 'http1' },
    { head: 'POST /x HTTP/1.1\r\n', want: 'http1' },
    { head: 'M-SEARCH * HTTP/1.1\r\n', want: 'http1' },
    { head: 'PRI', want: undefined },
    { head: 'PRI * HTTP/2.0\r\n', want: undefined },
    { head: preface, want: 'h2c' },
    { head: `${preface}\x00\x00\x00\x04`, want: 'h2c' },
    { head: 'PRI * HTTP/1.1\r\n', want: 'http1' },
    { head: ' GET', want: 'other' },
    { head: 'get / HTTP/1.1', want: 'other' },
    { head: '\x16\x03\x01\x02\x00', want: 'other' },
    { head: 'SSH-2.0-OpenSSH', want: 'other' },
    { head: 'A'.repeat(20), want: undefined },
    { head: 'A'.repeat(21), want: 'other' },
    // Empty lines before a request line, as node's parser skips them; a few at most.
    { head: '\r', want: undefined },
    { head: '\r\n', want: undefined },
    { head: '\r\nGET / HTTP/1.1\r\n', want: 'http1' },
    { head: '\r\n\r\nPOST ', want: 'http1' },
    { head: `${'\r\n'.repeat(4)}GET `, want: 'http1' },
    { head: `${'\r\n'.repeat(5)}GET `, want: 'other' },
    { head: '\r\n ', want: 'other' },
    { head: '\rGET ', want: 'other' },
    { head: `\r\n${'A'.repeat(21)}`, want: 'other' },
  ];
  for (const c of cases) t.equal(sniffProtocol(Buffer.from(c.head, 'latin1')), c.want, JSON.stringify(c.head));
  t.end();
});

t.test('the protocol is read across several chunks, and the bytes read are kept', async (t) => {
  const stream = new PassThrough();
  let decided = false;
  const result = readProtocol(stream as unknown as Socket).then((r) => {
    decided = true;
    return r;
  });
  stream.write('GE');
  // One turn of the event loop delivers the chunk; two letters decide nothing yet.
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(decided, false, 'undecided after "GE"');
  stream.write('T /a HTTP/1.1\r\n');
  const { protocol, head } = await result;
  t.equal(protocol, 'http1');
  t.equal(head.toString('latin1'), 'GET /a HTTP/1.1\r\n');
  t.equal(stream.listenerCount('data'), 0, 'stops reading once decided');
});

t.test('a connection that ends before saying anything is "other"', async (t) => {
  const stream = new PassThrough();
  const result = readProtocol(stream as unknown as Socket);
  stream.end('GE');
  stream.resume();
  t.strictSame(await result, { protocol: 'other', head: Buffer.from('GE') });
});

t.test('replaying yields the bytes already read, then the rest of the socket, and writes go back', async (t) => {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    void readProtocol(socket).then(({ head }) => {
      const replay = replaying(socket, head);
      let all = '';
      replay.on('data', (c: Buffer) => (all += c.toString('latin1')));
      replay.on('end', () => replay.end(`echo:${all}`));
    });
  });
  const port = await listenLocal(server);
  t.teardown(() => closeServer(server));
  const answer = await new Promise<string>((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    c.on('data', (d: Buffer) => (data += d.toString('latin1')));
    c.on('end', () => resolve(data));
    c.on('error', reject);
    c.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    c.end('and more');
  });
  t.equal(answer, 'echo:PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nand more', 'every byte once, in order');
});
