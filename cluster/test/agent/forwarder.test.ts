import t, { type Test } from 'tap';
import { connect, createServer, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ROUTING_PROBE_REPLY, ROUTING_PROBE_REQUEST } from '@telepresence-ts/core/contracts';
import { dialLocalApp, Forwarder, PROBE_SCREEN_MS, unmappedAddress, type ForwarderPorts } from '../../src/agent/forwarder.js';
import type { ForwardRoute } from '../../src/agent/routes.js';
import { closeServer, exchange, listenLocal, memoryLogger, openConnection, startReplyServer, until } from './helpers.js';

function route(containerName: string, containerPort: number, agentPort: number): ForwardRoute {
  return { containerName, containerPort, agentPort, label: `svc:${agentPort}` };
}

/** Ports whose intercept choice the test sets per agent port, and whose tunnels go to `tunnelPort`. */
function ports(tunnelPort?: number): ForwarderPorts & { intercepted: Map<number, string>; tunnels: string[] } {
  const intercepted = new Map<number, string>();
  const tunnels: string[] = [];
  return {
    intercepted,
    tunnels,
    interceptFor: (r) => intercepted.get(r.agentPort),
    personalFor: () => [],
    openTunnel: (interceptId): Duplex | undefined => {
      if (tunnelPort === undefined) return undefined;
      tunnels.push(interceptId);
      return connect({ host: '127.0.0.1', port: tunnelPort, allowHalfOpen: true });
    },
    dialApp: dialLocalApp,
    isRoutingProbe: () => false,
  };
}

async function startForwarder(t: Test, routes: ForwardRoute[], p: ForwarderPorts): Promise<Forwarder> {
  const log = memoryLogger();
  const forwarder = await Forwarder.start(routes, p, log, { host: '127.0.0.1', bindPort: () => 0 });
  t.teardown(() => forwarder.close());
  return forwarder;
}

t.test('passthrough: bytes unchanged both ways, with half-close', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const r = route('app', app.port, 9901);
  const fwd = await startForwarder(t, [r], ports());
  // Every byte value, to prove nothing is re-encoded on the way.
  const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1').repeat(64);
  const answer = await exchange(fwd.boundPort(r.agentPort) ?? 0, payload);
  t.equal(app.received[0], payload, 'the app got every byte, then EOF');
  t.equal(answer, `app:${payload}`, 'the client got the answer sent after its FIN, then EOF');
  await until(() => fwd.connectionCount === 0, 'connection forgotten');
  t.equal(fwd.connectionCount, 0, 'connection forgotten');
});

t.test('a large transfer through the forwarder keeps every byte (backpressure)', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const r = route('app', app.port, 9901);
  const fwd = await startForwarder(t, [r], ports());
  const big = 'x'.repeat(8 * 1024 * 1024);
  const answer = await exchange(fwd.boundPort(r.agentPort) ?? 0, big);
  t.equal(answer.length, big.length + 'app:'.length);
});

t.test('an intercepted port goes to the tunnel, not the app', async (t) => {
  const app = await startReplyServer('app');
  const client = await startReplyServer('client');
  t.teardown(() => closeServer(app.server));
  t.teardown(() => closeServer(client.server));
  const r = route('app', app.port, 9901);
  const p = ports(client.port);
  p.intercepted.set(9901, 'sess-1:echo');
  const fwd = await startForwarder(t, [r], p);
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'hello'), 'client:hello');
  t.strictSame(p.tunnels, ['sess-1:echo'], 'one tunnel for the intercept');
  t.strictSame(app.received, [], 'the app saw nothing');
});

t.test('a connection from the traffic-manager’s pod is a routing probe, answered by the agent itself', async (t) => {
  const app = await startReplyServer('app');
  const client = await startReplyServer('client');
  t.teardown(() => closeServer(app.server));
  t.teardown(() => closeServer(client.server));
  const r = route('app', app.port, 9901);
  const asked: string[] = [];
  // Intercepted, so that a probe that were not recognised would reach the workstation.
  let manager = '127.0.0.1';
  const p: ReturnType<typeof ports> = {
    ...ports(client.port),
    isRoutingProbe: (address: string): boolean => {
      asked.push(address);
      return address === manager;
    },
  };
  p.intercepted.set(9901, 'sess-1:echo');
  const fwd = await startForwarder(t, [r], p);
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, ROUTING_PROBE_REQUEST), ROUTING_PROBE_REPLY, 'the probe gets the reply, then EOF');
  t.strictSame(asked, ['127.0.0.1'], 'asked about the peer’s address');
  t.strictSame(p.tunnels, [], 'no tunnel was opened');
  t.strictSame(client.received, [], 'the workstation saw nothing');
  t.strictSame(app.received, [], 'nor did the app');
  // The manager's pod also dials for workstations (outbound access): those are no probes.
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'hello'), 'client:hello', 'other bytes from the manager are intercepted as any');
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'telepresence-ts routing probe? no'), 'client:telepresence-ts routing probe? no', 'even when they start like a probe');
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, `${ROUTING_PROBE_REQUEST}and more`), `client:${ROUTING_PROBE_REQUEST}and more`, 'or continue past one');
  manager = '10.244.0.2';
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'hello'), 'client:hello', 'other peers are intercepted as before');
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, ROUTING_PROBE_REQUEST), `client:${ROUTING_PROBE_REQUEST}`, 'and the probe’s bytes from them are just bytes');
});

t.test('unmappedAddress: IPv4 peers of a dual-stack listener lose the mapped prefix', async (t) => {
  const cases = [
    { address: '::ffff:10.244.0.5', want: '10.244.0.5' },
    { address: '::FFFF:127.0.0.1', want: '127.0.0.1' },
    { address: '10.244.0.5', want: '10.244.0.5' },
    { address: 'fd00::5', want: 'fd00::5' },
    { address: '::ffff:a00:5', want: '::ffff:a00:5' },
    { address: '', want: '' },
  ];
  for (const c of cases) t.equal(unmappedAddress(c.address), c.want, c.address || '(empty)');
});

t.test('no tunnel to be had (no manager session): the connection goes to the app', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const r = route('app', app.port, 9901);
  const p = ports(undefined);
  p.intercepted.set(9901, 'sess-1:echo');
  const fwd = await startForwarder(t, [r], p);
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'hello'), 'app:hello');
});

t.test('openTunnel throwing: the connection goes to the app and a warning is logged', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const r = route('app', app.port, 9901);
  const log = memoryLogger();
  const fwd = await Forwarder.start(
    [r],
    { interceptFor: () => 'x:y', personalFor: () => [], openTunnel: () => { throw new Error('boom'); }, dialApp: dialLocalApp, isRoutingProbe: () => false },
    log,
    { host: '127.0.0.1', bindPort: () => 0 },
  );
  t.teardown(() => fwd.close());
  t.equal(await exchange(fwd.boundPort(r.agentPort) ?? 0, 'hi'), 'app:hi');
  t.match(
    log.lines.filter((l) => l.level === 'warn'),
    [{ msg: /cannot open a tunnel/, fields: { error: 'boom' } }],
  );
});

t.test('several containers and ports: each port reaches its own container port', async (t) => {
  const apps = await Promise.all(['a-http', 'a-grpc', 'b-http'].map((n) => startReplyServer(n)));
  for (const a of apps) t.teardown(() => closeServer(a.server));
  const client = await startReplyServer('client');
  t.teardown(() => closeServer(client.server));
  const routes = [route('a', apps[0]!.port, 9901), route('a', apps[1]!.port, 9902), route('b', apps[2]!.port, 9903)];
  const p = ports(client.port);
  p.intercepted.set(9902, 'sess-1:grpc');
  const fwd = await startForwarder(t, routes, p);
  const answers = await Promise.all(routes.map((r) => exchange(fwd.boundPort(r.agentPort) ?? 0, String(r.agentPort))));
  t.strictSame(answers, ['a-http:9901', 'client:9902', 'b-http:9903'], 'only the intercepted port went to the client');
});

t.test('removing the intercept mid-connection keeps the open connection on its tunnel', async (t) => {
  const app = await startReplyServer('app');
  const client = await startReplyServer('client');
  t.teardown(() => closeServer(app.server));
  t.teardown(() => closeServer(client.server));
  const r = route('app', app.port, 9901);
  const p = ports(client.port);
  p.intercepted.set(9901, 'sess-1:echo');
  const fwd = await startForwarder(t, [r], p);
  const port = fwd.boundPort(r.agentPort) ?? 0;

  const open = await openConnection(port);
  open.socket.write('first ');
  await until(() => p.tunnels.length === 1, 'tunnel opened');
  t.equal(p.tunnels.length, 1, 'tunnel opened');
  p.intercepted.delete(9901);
  t.equal(await exchange(port, 'new'), 'app:new', 'a new connection goes to the app');
  open.socket.end('second');
  t.equal(await open.ended, 'end');
  t.equal(open.received(), 'client:first second', 'the old one stayed on its tunnel to the end');
});

t.test('a peer that answers and closes both ways at once: the client still gets every byte', async (t) => {
  const big = 'y'.repeat(4 * 1024 * 1024);
  const app = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(big, () => socket.destroy());
  });
  const appPort = await listenLocal(app);
  t.teardown(() => closeServer(app));
  const r = route('app', appPort, 9901);
  const fwd = await startForwarder(t, [r], ports());
  const open = await openConnection(fwd.boundPort(r.agentPort) ?? 0);
  // The client is slow to read at first, so the forwarder holds data when the app is gone.
  open.socket.pause();
  await new Promise((resolve) => setTimeout(resolve, 200));
  open.socket.resume();
  t.ok(['end', 'close'].includes(await open.ended));
  t.equal(open.received().length, big.length, 'nothing lost');
});

t.test('an app that refuses the connection closes the accepted one', async (t) => {
  const gone = await startReplyServer('gone');
  await closeServer(gone.server); // a port nobody listens on
  const r = route('app', gone.port, 9901);
  const fwd = await startForwarder(t, [r], ports());
  const open = await openConnection(fwd.boundPort(r.agentPort) ?? 0);
  t.ok(['end', 'close'].includes(await open.ended), 'closed');
  t.equal(open.received(), '');
  await until(() => fwd.connectionCount === 0, 'connection forgotten');
  t.equal(fwd.connectionCount, 0, 'connection forgotten');
});

t.test('a port in use fails the start, and no listener is left behind', async (t) => {
  const app = await startReplyServer('busy');
  t.teardown(() => closeServer(app.server));
  const free = route('app', 1, 0);
  const busy = route('app', 1, app.port);
  await t.rejects(
    Forwarder.start([free, busy], ports(), memoryLogger(), { host: '127.0.0.1' }),
    { category: 'config', code: 'agent-port-unavailable' },
  );
});

t.test('close drops open connections', async (t) => {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const r = route('app', app.port, 9901);
  const fwd = await Forwarder.start([r], ports(), memoryLogger(), { host: '127.0.0.1', bindPort: () => 0 });
  const open = await openConnection(fwd.boundPort(r.agentPort) ?? 0);
  await until(() => fwd.connectionCount === 1, 'accepted');
  t.equal(fwd.connectionCount, 1, 'accepted');
  await fwd.close();
  t.ok(['end', 'close'].includes(await open.ended), 'the connection was closed');
});

t.test('a silent connection from the manager’s pod is no probe: after a moment it reaches a server that speaks first', async (t) => {
  const greeter = createServer((s) => s.end('greetings'));
  await new Promise<void>((resolve) => greeter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => greeter.close(() => resolve())));
  const r = route('app', (greeter.address() as AddressInfo).port, 9902);
  const fwd = await startForwarder(t, [r], { ...ports(0), isRoutingProbe: () => true });
  const started = Date.now();
  const got = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: fwd.boundPort(r.agentPort) ?? 0 });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
  t.equal(got, 'greetings');
  t.ok(Date.now() - started >= PROBE_SCREEN_MS - 5, 'after the probe’s moment to speak');
});
