import { DirectStream } from '@telepresence-ts/core/direct-stream';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { DirectTunnels } from '../../src/agent/direct.js';
import { memoryLogger, until } from './helpers.js';

async function started(t: Test, helloTimeoutMs = 10_000): Promise<DirectTunnels> {
  const tunnels = await DirectTunnels.start(memoryLogger(), { helloTimeoutMs });
  t.teardown(() => tunnels.close());
  return tunnels;
}

function dial(tunnels: DirectTunnels): Socket {
  const socket = connect({ host: '127.0.0.1', port: tunnels.port });
  socket.on('error', () => undefined);
  return socket;
}

function park(tunnels: DirectTunnels, session: string): DirectStream {
  const stream = new DirectStream(dial(tunnels));
  stream.on('error', () => undefined);
  stream.sendHeader({ session });
  return stream;
}

t.test('streams park by session; take() hands out each once, and none when none is parked', async (t) => {
  const tunnels = await started(t);
  t.equal(tunnels.take('s-1', { interceptId: 'i', source: 'x' }), undefined);
  const a = park(tunnels, 's-1');
  park(tunnels, 's-1');
  await until(() => tunnels.parkedCount('s-1') === 2, 'two parked');
  const taken = tunnels.take('s-1', { interceptId: 'i', source: '10.0.0.1:1' });
  t.ok(taken);
  t.equal(tunnels.parkedCount('s-1'), 1);
  t.same(JSON.parse((await a.header).toString()), { interceptId: 'i', source: '10.0.0.1:1' }, 'the oldest gets the handoff');
});

t.test('a parked stream that goes away is forgotten', async (t) => {
  const tunnels = await started(t);
  const a = park(tunnels, 's-1');
  await until(() => tunnels.parkedCount('s-1') === 1, 'parked');
  a.destroy();
  await until(() => tunnels.parkedCount('s-1') === 0, 'forgotten');
  t.equal(tunnels.take('s-1', { interceptId: 'i', source: 'x' }), undefined);
});

t.test('silence, garbage and a hello without a session are closed', async (t) => {
  const tunnels = await started(t, 100);
  const silent = dial(tunnels);
  const garbage = dial(tunnels);
  garbage.write('GET / HTTP/1.1\r\n\r\n');
  const noSession = new DirectStream(dial(tunnels));
  noSession.on('error', () => undefined);
  noSession.sendHeader({ session: '' });
  // events.once would reject on the 'error' a stream closed by its peer emits first.
  const closed = (s: { closed: boolean; once(e: 'close', l: () => void): unknown }): Promise<void> => new Promise((resolve) => (s.closed ? resolve() : s.once('close', resolve)));
  await Promise.all([closed(silent), closed(garbage), closed(noSession)]);
  t.pass('all three closed by the agent');
});

t.test('one session cannot park without limit', async (t) => {
  const tunnels = await started(t);
  const streams = Array.from({ length: 20 }, () => park(tunnels, 's-1'));
  await until(() => streams.filter((s) => s.destroyed).length === 4, 'four refused');
  t.equal(tunnels.parkedCount('s-1'), 16, 'sixteen parked, the rest closed');
});

/** The daemon's end of a parked stream: what the agent sends on it, once it hands it a connection. */
function received(stream: DirectStream): { text: () => string } {
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { text: () => text };
}

t.test('with none parked while the session has streams here, a connection waits for the next one instead of the relay', async (t) => {
  const tunnels = await started(t);
  const first = park(tunnels, 's-1');
  await until(() => tunnels.parkedCount('s-1') === 1, 'parked');
  t.ok(tunnels.take('s-1', { interceptId: 'i', source: 'a' }), 'the parked one carries the first connection');

  let relayed = 0;
  const waiting = tunnels.take('s-1', { interceptId: 'i', source: '10.0.0.2:2' }, () => {
    relayed++;
    return undefined;
  });
  t.ok(waiting, 'the second connection gets a stream to come, not the relay');
  // Its end at teardown is an error, which the forwarder's splice would take.
  waiting?.on('error', () => undefined);
  t.equal(tunnels.waitingCount('s-1'), 1);
  waiting?.write('GET /');

  const next = park(tunnels, 's-1');
  const seen = received(next);
  t.same(JSON.parse((await next.header).toString()), { interceptId: 'i', source: '10.0.0.2:2' }, 'the next stream parked is handed the waiting connection');
  await until(() => seen.text() === 'GET /', 'what the connection sent before arrives');
  t.equal(tunnels.parkedCount('s-1'), 0, 'it was not parked');
  t.equal(tunnels.waitingCount('s-1'), 0);
  next.end('answer');
  let answer = '';
  waiting?.on('data', (c: Buffer) => (answer += c.toString()));
  await new Promise((resolve) => waiting?.once('end', resolve));
  t.equal(answer, 'answer', 'and the answer comes back, then the end');
  t.equal(relayed, 0, 'the relay was never asked');
  first.destroy();
});

t.test('a waiting connection goes to the relay when no stream comes in time', async (t) => {
  const tunnels = await DirectTunnels.start(memoryLogger(), { takeWaitMs: 50, slowWaitMs: 20, slowForMs: 60_000 });
  t.teardown(() => tunnels.close());
  park(tunnels, 's-1');
  await until(() => tunnels.parkedCount('s-1') === 1, 'parked');
  tunnels.take('s-1', { interceptId: 'i', source: 'a' });

  // The relay: a socket to a server that answers what it read, in capitals.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('end', () => socket.end(got.toUpperCase()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const relay = (): Socket => connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, allowHalfOpen: true });

  const waiting = tunnels.take('s-1', { interceptId: 'i', source: 'b' }, relay);
  t.ok(waiting);
  let answer = '';
  waiting?.on('data', (c: Buffer) => (answer += c.toString()));
  waiting?.end('hello');
  await new Promise((resolve) => waiting?.once('end', resolve));
  t.equal(answer, 'HELLO', 'the relay carried it both ways');
  t.equal(tunnels.waitingCount('s-1'), 0);
  t.equal(tunnels.take('s-1', { interceptId: 'i', source: 'c' }, relay), undefined, 'streams come too slowly now: the next goes to the relay at once');
});

t.test('a session with no stream here gets none to wait for', async (t) => {
  const tunnels = await started(t);
  t.equal(tunnels.take('s-1', { interceptId: 'i', source: 'x' }, () => undefined), undefined, 'never parked: the relay at once');
  const a = park(tunnels, 's-1');
  await until(() => tunnels.parkedCount('s-1') === 1, 'parked');
  a.destroy();
  await until(() => tunnels.parkedCount('s-1') === 0, 'gone');
  t.equal(tunnels.take('s-1', { interceptId: 'i', source: 'x' }, () => undefined), undefined, 'all its streams gone: the relay at once');
});
