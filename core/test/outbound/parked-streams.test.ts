import t from 'tap';
import type { Duplex } from 'node:stream';
import net from 'node:net';
import type { Logger } from '../../src/daemon/logger.js';
import { ParkedStreams } from '../../src/outbound/parked-streams.js';
import { eventually } from '../fixtures/eventually.js';
import { fakeDialPort } from './fake-dial-port.js';

function logger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: (level, message) => lines.push(`${level} ${message}`), lines };
}

t.test('parks streams that the manager took, hands one out per take, and parks a replacement', async (t) => {
  const dial = await fakeDialPort(t);
  let opens = 0;
  const { log } = logger();
  const pool = new ParkedStreams({ open: () => (opens++, dial.open()), log, size: 3 });
  t.teardown(() => pool.close());
  pool.start();
  await pool.whenParked(3);
  t.equal(pool.parked, 3);
  t.equal(opens, 3);
  const stream = pool.take();
  t.ok(stream !== undefined, 'a stream is handed out');
  t.equal(pool.parked, 2);
  await pool.whenParked(3);
  t.equal(opens, 4, 'one replacement');
  stream?.destroy();
});

t.test('a stream the manager never takes is not handed out', async (t) => {
  const silent = await fakeDialPort(t, { silent: true });
  const { log } = logger();
  const pool = new ParkedStreams({ open: () => silent.open(), log, size: 2 });
  t.teardown(() => pool.close());
  pool.start();
  await eventually(() => silent.sockets.size === 2, 5_000, 'the streams to reach the fake');
  t.equal(pool.take(), undefined, 'nothing ready: the flow takes an Outbound call');
});

t.test('failures back off, are reported once, and parking resumes once the manager is back', async (t) => {
  const dial = await fakeDialPort(t);
  let down = true;
  let attempts = 0;
  const { log, lines } = logger();
  const pool = new ParkedStreams({
    open: () => {
      attempts++;
      return down ? Promise.reject(new Error('pods "traffic-manager-x" not found')) : dial.open();
    },
    log,
    size: 2,
    backoff: { initialMs: 5, maxMs: 20 },
  });
  t.teardown(() => pool.close());
  pool.start();
  await eventually(() => attempts >= 6, 5_000, 'a few retries');
  t.equal(pool.take(), undefined);
  t.equal(lines.filter((l) => l.startsWith('warn')).length, 1, 'one warning for the outage');
  t.match(lines[0], /not found.*Outbound calls/);
  down = false;
  await pool.whenParked(2);
  const stream = pool.take();
  t.ok(stream !== undefined);
  stream?.destroy();
  t.match(lines.at(-1), /^info .*parked at the traffic-manager again/);
});

t.test('parked streams that die (the manager went away) are replaced once it is back', async (t) => {
  let dial = await fakeDialPort(t);
  const { log } = logger();
  const pool = new ParkedStreams({ open: () => dial.open(), log, size: 2, backoff: { initialMs: 5, maxMs: 20 } });
  t.teardown(() => pool.close());
  pool.start();
  await pool.whenParked(2);
  await dial.kill();
  await eventually(() => pool.parked === 0, 5_000, 'the dead streams to be dropped');
  t.equal(pool.take(), undefined);
  dial = await fakeDialPort(t);
  await pool.whenParked(2);
  t.pass('parked at the new manager');
});

t.test('parking is rate-limited: beyond the burst, streams come at the sustained rate', async (t) => {
  const dial = await fakeDialPort(t);
  let opens = 0;
  const { log } = logger();
  // A rate so low that nothing refills during the test.
  const pool = new ParkedStreams({ open: () => (opens++, dial.open()), log, size: 4, rate: { perSecond: 0.001, burst: 5 } });
  t.teardown(() => pool.close());
  pool.start();
  await pool.whenParked(4);
  const taken = [pool.take(), pool.take(), pool.take()];
  await pool.whenParked(2);
  t.equal(opens, 5, 'four, then one more from the burst');
  t.equal(pool.parked, 2);
  for (const s of taken) s?.destroy();
});

t.test('close() destroys the parked streams and parks no more', async (t) => {
  const dial = await fakeDialPort(t);
  const opened: Duplex[] = [];
  const { log } = logger();
  const pool = new ParkedStreams({
    open: async () => {
      const s = await dial.open();
      opened.push(s);
      return s;
    },
    log,
    size: 2,
  });
  pool.start();
  await pool.whenParked(2);
  pool.close();
  await eventually(() => opened.every((s) => s.destroyed), 5_000, 'the streams to close');
  t.equal(pool.take(), undefined);
  t.equal(opened.length, 2);
  t.ok(opened.every((s) => s instanceof net.Socket));
});
