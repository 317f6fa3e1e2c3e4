import { KubeConfig } from '@kubernetes/client-node';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocketServer, type WebSocket } from 'ws';
import { openPodStream } from '../../src/kube/pod-stream.js';

/** An API server stand-in that speaks the port-forward WebSocket protocol for one pod port. */
async function apiServer(t: Test, onStream: (ws: WebSocket, url: URL) => void, refuse?: { status: number; message: string }): Promise<KubeConfig> {
  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false) });
  server.on('upgrade', (req, socket, head) => {
    if (refuse !== undefined) {
      const body = JSON.stringify({ kind: 'Status', status: 'Failure', message: refuse.message });
      socket.end(`HTTP/1.1 ${refuse.status} Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onStream(ws, new URL(req.url ?? '/', 'http://x')));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

/** The server's first message on a channel: the port, little-endian. */
function portMessage(channel: number, port: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = channel;
  b.writeUInt16LE(port, 1);
  return b;
}

t.test('bytes flow both ways with the channel byte and the port prefix handled', async (t) => {
  let seenPath = '';
  const kc = await apiServer(t, (ws, url) => {
    seenPath = `${url.pathname}?${url.searchParams.toString()}`;
    ws.send(portMessage(0, 4000));
    ws.send(portMessage(1, 4000));
    // An echo of the data channel, upper-cased, as the pod would answer.
    ws.on('message', (data: Buffer) => {
      t.equal(data[0], 0, 'the client writes on the data channel');
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(data.subarray(1).toString().toUpperCase())]));
    });
  });
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  t.equal(seenPath, '/api/v1/namespaces/default/pods/web-1/portforward?ports=4000');
  stream.write('hello');
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  t.equal(chunk.toString(), 'HELLO');
  stream.end();
  await once(stream, 'close');
});

t.test('an error reported on the error channel fails the stream with it', async (t) => {
  const kc = await apiServer(t, (ws) => {
    ws.send(portMessage(0, 4000));
    ws.send(portMessage(1, 4000));
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from('error forwarding port 4000: connection refused')]));
    ws.close();
  });
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  stream.resume();
  const [err] = (await once(stream, 'error').catch((e: unknown) => [e])) as [Error];
  t.match(err.message, /port-forward to default\/web-1:4000: error forwarding port 4000: connection refused/);
});

t.test('a refused upgrade is an error naming the API server message', async (t) => {
  const kc = await apiServer(t, () => undefined, { status: 403, message: 'pods "web-1" is forbidden: User "dev" cannot create resource "pods/portforward"' });
  await t.rejects(openPodStream(kc, 'default', 'web-1', 4000), /port-forward to default\/web-1:4000: 403 pods "web-1" is forbidden/);
});
