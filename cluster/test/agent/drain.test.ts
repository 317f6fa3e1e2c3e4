import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { acceptsOnLoopback, untilAppStops } from '../../src/agent/drain.js';
import { FakeClock } from '../shared/fake-clock.js';

/** Lets pending promise callbacks run until `done()` holds. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((resolve) => setImmediate(resolve));
  if (!done()) throw new Error('the condition never held');
}

t.test('stops at once when the app fronts no port, or none accepts', async (t) => {
  const clock = new FakeClock();
  t.equal(await untilAppStops([], { clock, accepts: async () => true }), 'stopped');
  t.equal(await untilAppStops([8080, 9090], { clock, accepts: async () => false }), 'stopped');
  t.equal(clock.pending, 0, 'no timer left');
});

t.test('keeps going while any port accepts, and stops once none does', async (t) => {
  const clock = new FakeClock();
  const open = new Set([8080, 9090]);
  const asked: number[] = [];
  let result: string | undefined;
  void untilAppStops([8080, 9090], { clock, accepts: async (p) => (asked.push(p), open.has(p)) }).then((r) => (result = r));
  await until(() => clock.pending === 1);
  open.delete(8080);
  clock.advance(200);
  await until(() => asked.length === 4 && clock.pending === 1);
  t.equal(result, undefined, 'one port still accepts: still forwarding');
  open.delete(9090);
  clock.advance(200);
  await until(() => result !== undefined);
  t.equal(result, 'stopped');
});

t.test('gives up after the longest wait', async (t) => {
  const clock = new FakeClock();
  let result: string | undefined;
  void untilAppStops([8080], { clock, accepts: async () => true, maxMs: 1000, pollMs: 250 }).then((r) => (result = r));
  for (let i = 0; i < 4; i++) {
    await until(() => clock.pending === 1);
    clock.advance(250);
  }
  await until(() => result !== undefined);
  t.equal(result, 'timeout');
});

t.test('acceptsOnLoopback: a listening port accepts, a closed one does not', async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  t.equal(await acceptsOnLoopback(port), true);
  await new Promise<void>((ok) => server.close(() => ok()));
  t.equal(await acceptsOnLoopback(port), false);
});
