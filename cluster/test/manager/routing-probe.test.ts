import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ROUTING_PROBE_REPLY, ROUTING_PROBE_REQUEST } from '@telepresence-ts/core/contracts';
import { probeRouting } from '../../src/manager/routing-probe.js';

/** A server on 127.0.0.1 that does `onConnection` with each connection; its port. */
async function serve(t: Test, onConnection: (socket: Socket) => void): Promise<number> {
  const server: Server = createServer((socket) => {
    // The probe writes its request first; these servers read it away and never mind a reset.
    socket.on('error', () => undefined);
    socket.resume();
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** A port that refuses connections: bound once, then closed. */
async function refusingPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

t.test('probeRouting tells an agent from everything else', async (t) => {
  const open = new Set<Socket>();
  const hold = (socket: Socket): void => {
    open.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => open.delete(socket));
  };
  t.teardown(() => {
    for (const s of open) s.destroy();
  });
  const cases: Array<{ name: string; port: () => Promise<number>; want: boolean }> = [
    { name: 'an agent: the reply, then EOF', port: () => serve(t, (s) => s.end(ROUTING_PROBE_REPLY)), want: true },
    {
      name: 'an agent whose reply comes in pieces',
      port: () =>
        serve(t, (s) => {
          s.write(ROUTING_PROBE_REPLY.slice(0, 5));
          setImmediate(() => s.end(ROUTING_PROBE_REPLY.slice(5)));
        }),
      want: true,
    },
    { name: 'an app that speaks first with something else', port: () => serve(t, (s) => s.end('220 smtp ready\r\n')), want: false },
    { name: 'an app that closes at once', port: () => serve(t, (s) => s.end()), want: false },
    { name: 'an app that waits for the client (timeout)', port: () => serve(t, hold), want: false },
    { name: 'nothing listening', port: refusingPort, want: false },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      t.equal(await probeRouting('127.0.0.1', await c.port(), { connectMs: 1000, replyMs: 100 }), c.want);
    });
  }
});

t.test('a probe says what it is first, so that an agent tells it from the outbound flows that the manager also dials', async (t) => {
  let first = '';
  const port = await serve(t, (s) => {
    s.setEncoding('latin1');
    s.once('data', (chunk: string) => {
      first = chunk;
      s.end(ROUTING_PROBE_REPLY);
    });
  });
  t.equal(await probeRouting('127.0.0.1', port, { connectMs: 1000, replyMs: 1000 }), true);
  t.equal(first, ROUTING_PROBE_REQUEST);
});
