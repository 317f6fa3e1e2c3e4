import t from 'tap';
import { Http1Observer, MAX_OBSERVED_HEAD_BYTES, type ObservedExchange } from '../../src/agent/http-observer.js';

/** An observer on a fake clock that advances 1 ms per read, with what it reported. */
function observe(bodyBytes = 0) {
  let now = 1_000;
  const seen: ObservedExchange[] = [];
  const o = new Http1Observer({ bodyBytes, onExchange: (e) => seen.push(e), now: () => now++ });
  return { o, seen };
}

/** Feeds `text` in pieces of `size` bytes, through a buffer reused between calls (pieces are valid only during the call). */
function feed(write: (piece: Uint8Array) => void, text: string, size = 1 << 20): void {
  const bytes = Buffer.from(text, 'latin1');
  const scratch = Buffer.alloc(size);
  for (let i = 0; i < bytes.length; i += size) {
    const n = bytes.copy(scratch, 0, i, Math.min(bytes.length, i + size));
    write(scratch.subarray(0, n));
    scratch.fill(0x58);
  }
}

const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: web\r\n${extra}\r\n`;
const OK = (body: string, extra = '') => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

t.test('a request and its response, whatever the piece sizes', async (t) => {
  for (const size of [1, 3, 7, 64, 1 << 20]) {
    const { o, seen } = observe(4);
    feed((p) => o.fromCaller(p), 'POST /api/x?y=1 HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer z\r\nContent-Length: 11\r\n\r\nhello world', size);
    feed((p) => o.toCaller(p), OK('created!', 'X-Id: 7\r\n').replace('200 OK', '201 Created'), size);
    t.equal(seen.length, 1, `pieces of ${size}`);
    t.match(seen[0], {
      index: 0,
      method: 'POST',
      path: '/api/x?y=1',
      status: 201,
      requestHeaders: [
        { name: 'Host', value: 'web' },
        { name: 'Authorization', value: 'Bearer z' },
        { name: 'Content-Length', value: '11' },
      ],
      responseHeaders: [
        { name: 'Content-Length', value: '8' },
        { name: 'X-Id', value: '7' },
      ],
      error: '',
    });
    t.equal(seen[0]?.requestBody.toString(), 'hell', 'bodies kept up to what was asked, copied');
    t.equal(seen[0]?.responseBody.toString(), 'crea');
    t.equal(seen[0]?.bytesIn, 'POST /api/x?y=1 HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer z\r\nContent-Length: 11\r\n\r\nhello world'.length);
    t.equal(seen[0]?.bytesOut, OK('created!', 'X-Id: 7\r\n').replace('200 OK', '201 Created').length);
  }
});

t.test('no bodies unless asked', async (t) => {
  const { o, seen } = observe(0);
  feed((p) => o.fromCaller(p), GET('/'));
  feed((p) => o.toCaller(p), OK('abc'));
  t.equal(seen[0]?.responseBody.length, 0);
});

t.test('pipelined requests are matched with their responses in order', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), GET('/a') + GET('/b') + 'HEAD /c HTTP/1.1\r\n\r\n' + GET('/d'), 5);
  feed((p) => o.toCaller(p), OK('1') + 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n' + 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n' + 'HTTP/1.1 304 Not Modified\r\n\r\n', 4);
  t.strictSame(
    seen.map((e) => [e.index, e.method, e.path, e.status]),
    [
      [0, 'GET', '/a', 200],
      [1, 'GET', '/b', 404],
      [2, 'HEAD', '/c', 200],
      [3, 'GET', '/d', 304],
    ],
    'HEAD and 304 have no body; chunked with extensions and trailers',
  );
});

t.test('chunked request bodies and stray CRLFs between requests', async (t) => {
  const { o, seen } = observe(100);
  feed((p) => o.fromCaller(p), 'POST /u HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n\r\n' + GET('/next'), 2);
  feed((p) => o.toCaller(p), OK('') + OK(''));
  t.strictSame(seen.map((e) => e.path), ['/u', '/next']);
  t.equal(seen[0]?.requestBody.toString(), 'hello world');
});

t.test('1xx responses are skipped; the final one answers', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), 'PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
  feed((p) => o.toCaller(p), 'HTTP/1.1 100 Continue\r\n\r\n');
  feed((p) => o.fromCaller(p), 'ok');
  feed((p) => o.toCaller(p), 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n' + OK('done'));
  t.equal(seen.length, 1);
  t.equal(seen[0]?.status, 200);
  t.equal(seen[0]?.bytesOut, 'HTTP/1.1 100 Continue\r\n\r\n'.length + 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n'.length + OK('done').length);
});

t.test('a response that runs to the close ends with the connection', async (t) => {
  const { o, seen } = observe(10);
  feed((p) => o.fromCaller(p), 'GET /old HTTP/1.0\r\n\r\n');
  feed((p) => o.toCaller(p), 'HTTP/1.0 200 OK\r\n\r\nstream of bytes');
  t.equal(seen.length, 0, 'not before the close');
  o.closed();
  t.match(seen[0], { path: '/old', status: 200, error: '' });
  t.equal(seen[0]?.responseBody.toString(), 'stream of ');
});

t.test('a connection that closes before the response: the request is reported with why', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), GET('/slow') + GET('/never'));
  feed((p) => o.toCaller(p), 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf');
  o.closed();
  t.strictSame(
    seen.map((e) => [e.path, e.status, e.error]),
    [
      ['/slow', 200, 'the connection closed before the response ended'],
      ['/never', 0, 'the connection closed before the response'],
    ],
  );
});

t.test('an upgrade: the 101 is reported and parsing stops', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), 'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello');
  feed((p) => o.toCaller(p), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi');
  feed((p) => o.fromCaller(p), 'GET /not-http HTTP/1.1\r\n\r\n');
  o.closed();
  t.strictSame(seen.map((e) => [e.path, e.status, e.error]), [['/ws', 101, '']]);
  t.notOk(o.active);
});

t.test('a CONNECT: its 200 is reported and parsing stops', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), 'CONNECT db:5432 HTTP/1.1\r\n\r\nbinary');
  feed((p) => o.toCaller(p), 'HTTP/1.1 200 Connection Established\r\n\r\nmore binary');
  t.strictSame(seen.map((e) => [e.method, e.path, e.status]), [['CONNECT', 'db:5432', 200]]);
  t.notOk(o.active);
});

t.test('it gives up quietly on what it cannot parse', async (t) => {
  const cases: ReadonlyArray<{ name: string; request: string; response?: string }> = [
    { name: 'not HTTP', request: '\x16\x03\x01 TLS hello\r\n\r\n' },
    { name: 'a head too large', request: `GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_OBSERVED_HEAD_BYTES)}\r\n\r\n` },
    { name: 'a bad header line', request: 'GET / HTTP/1.1\r\nno colon here\r\n\r\n' },
    { name: 'conflicting lengths', request: 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' },
    { name: 'a request of unknown length', request: 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n' },
    { name: 'a bad chunk size', request: 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' },
    { name: 'a response nobody asked for', request: '', response: OK('x') },
    { name: 'a bad status line', request: GET('/'), response: 'HTTP/2 200\r\n\r\n' },
  ];
  for (const c of cases) {
    const { o, seen } = observe();
    feed((p) => o.fromCaller(p), c.request);
    feed((p) => o.toCaller(p), c.response ?? OK('x'));
    feed((p) => o.fromCaller(p), GET('/after'));
    feed((p) => o.toCaller(p), OK('y'));
    o.closed();
    t.strictSame(seen, [], c.name);
    t.notOk(o.active, `${c.name}: inactive`);
  }
});

t.test('timing: from the request’s first byte to the response’s end', async (t) => {
  const { o, seen } = observe();
  feed((p) => o.fromCaller(p), GET('/t'));
  feed((p) => o.toCaller(p), OK('x'));
  t.equal(seen[0]?.startedAt, 1_000);
  t.equal(seen[0]?.durationMs, 1);
});
