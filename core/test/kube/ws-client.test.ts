import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocketServer, type WebSocket } from 'ws';
import { connectWebSocket, WsRefusedError, type WsConnection } from '../../src/kube/ws-client.js';

/** A ws server (the reference implementation) that picks `protocol` and hands each connection on. */
async function server(t: Test, onConnection: (ws: WebSocket) => void, protocol = 'v4.channel.k8s.io'): Promise<URL> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end('{"message":"forbidden"}');
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => protocol });
  srv.on('upgrade', (req, socket, head) => {
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found');
      return;
    }
    wss.handleUpgrade(req, socket, head, onConnection);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return new URL(`ws://127.0.0.1:${(srv.address() as AddressInfo).port}/stream`);
}

async function connect(url: URL, protocols = ['v4.channel.k8s.io']): Promise<WsConnection> {
  return connectWebSocket(url, { requestOptions: {}, protocols, timeoutMs: 5000 });
}

/** Everything received, as messages (pieces joined, split where `start` says). */
function collect(ws: WsConnection): Buffer[][] {
  const messages: Buffer[][] = [];
  ws.on('data', (piece, start) => {
    if (start) messages.push([]);
    messages.at(-1)?.push(piece);
  });
  return messages;
}

t.test('messages of every length class go both ways, in order, with pieces marking their starts', async (t) => {
  const sizes = [0, 1, 125, 126, 65535, 65536, 1_000_000];
  const echoed: Buffer[] = [];
  const url = await server(t, (ws) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      t.ok(isBinary, 'the client sends binary messages');
      echoed.push(data);
      ws.send(data);
    });
  });
  const ws = await connect(url);
  t.equal(ws.protocol, 'v4.channel.k8s.io');
  const messages = collect(ws);
  ws.start();
  const payloads = sizes.map((n, i) => Buffer.alloc(n, i + 1));
  for (const p of payloads) ws.send(p);
  const nonEmpty = payloads.filter((p) => p.length > 0);
  while (messages.length < nonEmpty.length || Buffer.concat(messages.at(-1) ?? []).length < nonEmpty.at(-1)!.length) {
    await once(ws, 'data');
  }
  t.same(
    echoed.map((b) => b.length),
    sizes,
    'the server got every message whole',
  );
  t.same(
    messages.map((m) => Buffer.concat(m)),
    nonEmpty,
    'the echoes come back whole (an empty message has no piece to mark)',
  );
  ws.close();
  await once(ws, 'close');
});

t.test('a message sent in parts is one message of their bytes, in order', async (t) => {
  const got: Buffer[] = [];
  let both!: () => void;
  const bothArrived = new Promise<void>((resolve) => (both = resolve));
  const url = await server(t, (ws) =>
    ws.on('message', (data: Buffer) => {
      if (got.push(data) === 2) both();
    }),
  );
  const ws = await connect(url);
  ws.start();
  let written = false;
  // Lengths that together need the 2-byte length field while no part does.
  ws.send([Buffer.from('head:'), Buffer.alloc(100, 0x61), Buffer.alloc(30, 0x62)], () => (written = true));
  ws.send([Buffer.from('x')]);
  await bothArrived;
  t.same(got, [Buffer.concat([Buffer.from('head:'), Buffer.alloc(100, 0x61), Buffer.alloc(30, 0x62)]), Buffer.from('x')], 'two messages, each whole');
  t.ok(written, 'the callback came once the parts were written');
  ws.close();
  await once(ws, 'close');
});

t.test('a fragmented message is one message: only its first piece starts it', async (t) => {
  const url = await server(t, (ws) => {
    ws.send(Buffer.from('ab'), { fin: false });
    ws.send(Buffer.from('cd'), { fin: true });
    ws.send(Buffer.from('e'));
  });
  const ws = await connect(url);
  const messages = collect(ws);
  ws.start();
  while (messages.length < 2) await once(ws, 'data');
  t.same(
    messages.map((m) => Buffer.concat(m).toString()),
    ['abcd', 'e'],
  );
  ws.terminate();
});

t.test('pings are answered, and a close from the server closes the connection', async (t) => {
  let pong: Promise<unknown> = Promise.resolve();
  const url = await server(t, (ws) => {
    pong = once(ws, 'pong');
    ws.ping(Buffer.from('are you there'));
    void pong.then(() => ws.close(1000));
  });
  const ws = await connect(url);
  ws.start();
  await once(ws, 'close');
  const [data] = (await pong) as [Buffer];
  t.equal(data.toString(), 'are you there');
  t.notOk(ws.isOpen);
});

t.test('a refused upgrade carries the status and body; a subprotocol not offered is an error', async (t) => {
  const url = await server(t, () => undefined, 'something-else');
  const refused = await connectWebSocket(new URL('/refuse', url), { requestOptions: {}, protocols: ['p'], timeoutMs: 5000 }).catch((e: unknown) => e);
  t.ok(refused instanceof WsRefusedError);
  t.match(refused, { statusCode: 404, body: 'not found' });
  await t.rejects(connect(url, ['v4.channel.k8s.io']), /chose the subprotocol "something-else", none of v4.channel.k8s.io/);
});

t.test('subprotocol names with a slash are offered as they are', async (t) => {
  let offered = '';
  const srv = http.createServer();
  srv.on('upgrade', (req, socket) => {
    offered = String(req.headers['sec-websocket-protocol']);
    socket.destroy();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  await t.rejects(connect(new URL(`ws://127.0.0.1:${(srv.address() as AddressInfo).port}/`), ['SPDY/3.1+portforward.k8s.io', 'v4.channel.k8s.io']));
  t.equal(offered, 'SPDY/3.1+portforward.k8s.io, v4.channel.k8s.io');
});
