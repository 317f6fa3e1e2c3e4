import { DirectStream } from '@telepresence-ts/core/direct-stream';
import { connect, type Socket } from 'node:net';
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
