import type { AgentInfo, InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import t, { type Test } from 'tap';
import { DirectTunnels } from '../../src/daemon/direct.js';
import { DirectStream, parseHeader } from '../../src/direct-stream.js';
import { eventually } from '../fixtures/eventually.js';

/** The agent's side, reduced to what the daemon sees: it accepts, reads the hello, keeps the stream. */
async function fakeAgent(t: Test): Promise<{ port: number; parked: Array<{ session: unknown; stream: DirectStream }> }> {
  const parked: Array<{ session: unknown; stream: DirectStream }> = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const stream = new DirectStream(socket);
    stream.on('error', () => undefined);
    void stream.header.then((bytes) => parked.push({ session: parseHeader(bytes).session, stream }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, parked };
}

/** The workstation's process: reads to the end, answers `local:<what it read>`. */
async function localApp(t: Test): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('end', () => socket.end(`local:${got}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

function agent(tunnelPort: number, podName = 'web-1'): AgentInfo {
  return { name: 'web', namespace: 'default', podName, podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort };
}

function ours(id: string, localPort: number): InterceptInfo {
  return {
    id,
    spec: { name: 'web', namespace: 'default', workloadName: 'web', workloadKind: 'Deployment', serviceName: '', servicePort: '', containerName: '', localPort, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] },
    target: undefined,
    clientSessionId: 'session-1',
    clientName: 'alice@laptop',
    disposition: 2,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
}

function tcp(_namespace: string, _pod: string, port: number): Promise<Duplex> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  return once(socket, 'connect').then(() => socket);
}

t.test('streams are parked at the agent of our intercept and carry a handed-over connection', async (t) => {
  const fake = await fakeAgent(t);
  const local = await localApp(t);
  const intercept = ours('session-1:web', local);
  let connections = 0;
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf: (id) => (id === intercept.id ? local : undefined), log: () => undefined, onConnection: () => connections++, streamsPerPod: 2, maxStreamsPerPod: 2 });
  t.teardown(() => direct.close());
  direct.update([agent(fake.port)], [intercept]);
  await eventually(() => fake.parked.length === 2, 5_000, 'two streams parked');
  t.same(
    fake.parked.map((p) => p.session),
    ['session-1', 'session-1'],
    'each says whose it is',
  );

  // The agent hands one a connection: the handoff, the request, its end.
  const { stream } = fake.parked[0]!;
  stream.sendHeader({ interceptId: intercept.id, source: '10.0.0.1:5000' });
  let answer = '';
  stream.on('data', (c: Buffer) => (answer += c.toString()));
  stream.end('GET /');
  await once(stream, 'end');
  t.equal(answer, 'local:GET /', 'the workstation answered, after the half-close');
  t.equal(connections, 1);
  await eventually(() => fake.parked.length === 3, 5_000, 'a new stream parked in its place');
});

t.test('a pod that cannot be reached is reported once, retried, and leaves the manager path', async (t) => {
  const logs: string[] = [];
  let attempts = 0;
  const direct = new DirectTunnels({
    sessionId: 'session-1',
    openPodStream: async (ns, pod, port) => {
      attempts++;
      throw new Error(`port-forward to ${ns}/${pod}:${port}: 403 pods "web-1" is forbidden`);
    },
    localPortOf: () => 8080,
    log: (level, message) => logs.push(`${level} ${message}`),
    streamsPerPod: 2,
    backoff: { initialMs: 10, maxMs: 20 },
  });
  t.teardown(() => direct.close());
  direct.update([agent(4000)], [ours('session-1:web', 8080)]);
  await eventually(() => attempts >= 4, 5_000, 'retried');
  t.equal(logs.filter((l) => l.startsWith('warn')).length, 1, 'reported once');
  t.match(logs[0], /no direct tunnels to default\/web-1 .*forbidden.*go through the traffic-manager/);
});

t.test('after the last intercept the streams linger, then close; an agent that goes closes them at once', async (t) => {
  const fake = await fakeAgent(t);
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf: () => undefined, log: () => undefined, streamsPerPod: 2, lingerMs: 200 });
  t.teardown(() => direct.close());
  direct.update([agent(0, 'old-agent'), agent(fake.port)], [ours('session-1:web', 8080)]);
  await eventually(() => fake.parked.length === 2, 5_000, 'parked');
  t.equal(direct.parked('default', 'old-agent'), 0, 'an agent without a tunnel port is skipped');

  direct.update([agent(fake.port)], []);
  t.equal(direct.parked('default', 'web-1'), 2, 'still parked right after the intercept ended');
  t.match(await direct.ready('default', 'web', 5_000), { direct: true }, 'an intercept made again finds them ready');
  await eventually(() => fake.parked.every((p) => p.stream.destroyed), 5_000, 'closed at the agent after the linger');
  t.equal(direct.parked('default', 'web-1'), 0);

  direct.update([agent(fake.port)], [ours('session-1:web', 8080)]);
  await eventually(() => direct.parked('default', 'web-1') === 2, 5_000, 'parked again');
  direct.update([], []);
  t.equal(direct.parked('default', 'web-1'), 0, 'the agent is gone: closed at once');
});

t.test('a handoff for an intercept that is not ours is closed', async (t) => {
  const fake = await fakeAgent(t);
  const logs: string[] = [];
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf: () => undefined, log: (l, m) => logs.push(`${l} ${m}`), streamsPerPod: 1 });
  t.teardown(() => direct.close());
  direct.update([agent(fake.port)], [ours('session-1:web', 8080)]);
  await eventually(() => fake.parked.length === 1, 5_000, 'parked');
  const { stream } = fake.parked[0]!;
  stream.sendHeader({ interceptId: 'someone-else:web', source: 'x' });
  await eventually(() => stream.destroyed, 5_000, 'closed');
  t.match(logs.join('\n'), /not one of our intercepts/);
});

t.test('ready(): true once parked, false when the pod refuses or no agent can take streams', async (t) => {
  const fake = await fakeAgent(t);
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf: () => undefined, log: () => undefined, streamsPerPod: 1 });
  t.teardown(() => direct.close());
  t.match(await direct.ready('default', 'web', 5_000), { direct: false, reason: 'its agent takes no direct tunnels' }, 'no agent known');
  direct.update([agent(fake.port)], [ours('session-1:web', 8080)]);
  t.match(await direct.ready('default', 'web', 5_000), { direct: true, reason: '' }, 'parked');

  const refused = new DirectTunnels({
    sessionId: 'session-1',
    openPodStream: async () => {
      throw new Error('403 forbidden');
    },
    localPortOf: () => undefined,
    log: () => undefined,
  });
  t.teardown(() => refused.close());
  refused.update([agent(4000)], [ours('session-1:web', 8080)]);
  t.match(await refused.ready('default', 'web', 5_000), { direct: false, reason: '403 forbidden' }, 'refused, with the reason');
});

t.test('while connections are open, a pool parks as many more as it had in use at once, up to its maximum; quiet, it parks its few again', async (t) => {
  const fake = await fakeAgent(t);
  const local = await localApp(t);
  const intercept = ours('session-1:web', local);
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf: () => local, log: () => undefined, streamsPerPod: 2, maxStreamsPerPod: 5, shrinkMs: 300 });
  t.teardown(() => direct.close());
  direct.update([agent(fake.port)], [intercept]);
  await eventually(() => direct.parked('default', 'web-1') === 2, 5_000, 'two parked');

  // The agent hands connections to parked streams and they stay open (the local app answers at
  // their end), as a burst of keep-alive connections does.
  const handOff = (): DirectStream => {
    const open = fake.parked.find((p) => !p.stream.destroyed && !handed.has(p.stream));
    if (open === undefined) throw new Error('nothing parked at the agent');
    handed.add(open.stream);
    open.stream.sendHeader({ interceptId: intercept.id, source: '10.0.0.1:5000' });
    open.stream.write('GET /');
    open.stream.resume();
    return open.stream;
  };
  const handed = new Set<DirectStream>();
  handOff();
  handOff();
  await eventually(() => direct.parked('default', 'web-1') === 4, 5_000, 'two in use and four parked');
  await eventually(() => fake.parked.length - handed.size === 4, 5_000, 'the agent has the four');
  const more = [handOff(), handOff(), handOff()];
  await eventually(() => direct.parked('default', 'web-1') === 5, 5_000, 'five parked: the maximum, with five in use');
  t.equal(fake.parked.filter((p) => !p.stream.destroyed).length - handed.size, 5, 'never more than the maximum parked');

  for (const stream of [...handed]) stream.end();
  await Promise.all(more.map((s) => once(s, 'end')));
  await eventually(() => direct.parked('default', 'web-1') === 2, 5_000, 'back to two once nobody took any for a while');
  await eventually(() => fake.parked.filter((p) => !p.stream.destroyed && !handed.has(p.stream)).length === 2, 5_000, 'the others closed at the agent');
});

t.test("a replace's handoff names the container port: the connection goes to the local port that port maps to", async (t) => {
  const fake = await fakeAgent(t);
  const first = await localApp(t);
  const second = await localApp(t);
  const asked: Array<number | undefined> = [];
  const localPortOf = (_id: string, containerPort?: number): number => {
    asked.push(containerPort);
    return containerPort === 9090 ? second : first;
  };
  const direct = new DirectTunnels({ sessionId: 'session-1', openPodStream: tcp, localPortOf, log: () => undefined, streamsPerPod: 2, maxStreamsPerPod: 2 });
  t.teardown(() => direct.close());
  direct.update([agent(fake.port)], [ours('session-1:web', 0)]);
  await eventually(() => fake.parked.length === 2, 5_000, 'two streams parked');
  const hand = async (stream: DirectStream, header: Record<string, unknown>): Promise<void> => {
    stream.sendHeader({ interceptId: 'session-1:web', source: '10.0.0.1:5000', ...header });
    stream.resume();
    stream.end('hi');
    await once(stream, 'end');
  };
  await hand(fake.parked[0]!.stream, { containerPort: 9090 });
  await hand(fake.parked[1]!.stream, { containerPort: 'x' });
  t.strictSame(asked, [9090, undefined], 'the port named, and none for a header whose port is no number');
});
