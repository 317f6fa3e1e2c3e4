import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { ClientNodeKubeApi } from '../../src/kube/client-node-kube-api.js';
import type { TpError } from '../../src/errors.js';
import { apiServer, portMessage } from '../fixtures/fake-api-server.js';

const target = { context: 'x', namespace: 'default', server: 'http://127.0.0.1' };

/**
 * Connects to the forward's local port and sends `send`; resolves with the first answer, or ''
 * when the connection closes without one. Closes the connection.
 */
async function exchange(port: number, send: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(send);
  const answer = await new Promise<string>((resolve) => {
    socket.once('data', (c: Buffer) => resolve(c.toString()));
    socket.once('close', () => resolve(''));
  });
  socket.destroy();
  return answer;
}

t.test('each local connection gets a stream of its own to the pod, and bytes pass both ways', async (t) => {
  const paths: string[] = [];
  const kc = await apiServer(t, (ws, url) => {
    paths.push(`${url.pathname}?${url.searchParams.toString()}`);
    ws.send(portMessage(0, 8081));
    ws.send(portMessage(1, 8081));
    // The pod's side: answers what it reads, upper-cased.
    ws.on('message', (data: Buffer) => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(data.subarray(1).toString().toUpperCase())])));
  });
  const api = new ClientNodeKubeApi(kc, target);
  const errors: TpError[] = [];
  const forward = await api.portForward('tp-system', 'traffic-manager-1', 8081, (e) => errors.push(e));
  t.teardown(() => forward.close());
  // What the client sends before its stream is open waits for it instead of being lost.
  t.equal(await exchange(forward.localPort, 'first'), 'FIRST');
  t.equal(await exchange(forward.localPort, 'second'), 'SECOND');
  t.strictSame(paths, ['/api/v1/namespaces/tp-system/pods/traffic-manager-1/portforward?ports=8081', '/api/v1/namespaces/tp-system/pods/traffic-manager-1/portforward?ports=8081']);
  t.strictSame(errors, [], 'no error reported');
});

t.test("the pod's refusal, reported on the error channel, reaches the listener and closes the connection", async (t) => {
  const kc = await apiServer(t, (ws) => {
    ws.send(portMessage(0, 8081));
    ws.send(portMessage(1, 8081));
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from('error forwarding port 8081: connection refused')]));
    ws.close();
  });
  const errors: TpError[] = [];
  const forward = await new ClientNodeKubeApi(kc, target).portForward('tp-system', 'traffic-manager-1', 8081, (e) => errors.push(e));
  t.teardown(() => forward.close());
  t.equal(await exchange(forward.localPort, 'hello'), '', 'nothing answered');
  t.equal(errors.length, 1);
  t.match(errors[0], { code: 'port-forward-failed', message: /traffic-manager-1:8081: error forwarding port 8081: connection refused/ });
});

t.test('a refused port-forward (RBAC) reaches the listener and closes the connection', async (t) => {
  const kc = await apiServer(t, () => undefined, { status: 403, message: 'pods "traffic-manager-1" is forbidden: User "dev" cannot create resource "pods/portforward"' });
  const errors: TpError[] = [];
  const forward = await new ClientNodeKubeApi(kc, target).portForward('tp-system', 'traffic-manager-1', 8081, (e) => errors.push(e));
  t.teardown(() => forward.close());
  t.equal(await exchange(forward.localPort, 'hello'), '');
  t.match(errors, [{ code: 'port-forward-failed', message: /403 pods "traffic-manager-1" is forbidden/ }]);
});

t.test('close() ends open connections and stops listening', async (t) => {
  const kc = await apiServer(t, (ws) => {
    ws.send(portMessage(0, 8081));
    ws.send(portMessage(1, 8081));
  });
  const forward = await new ClientNodeKubeApi(kc, target).portForward('tp-system', 'traffic-manager-1', 8081);
  const socket = net.connect(forward.localPort, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  await forward.close();
  await once(socket, 'close');
  const refused = net.connect(forward.localPort, '127.0.0.1');
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNREFUSED');
});
