import t from 'tap';
import { EventuallyTimeoutError, eventually, realClock, type Clock } from '../src/eventually.js';

/** A clock that only moves when someone sleeps (or an attempt says it took time). */
function fakeClock(): Clock & { sleeps: number[]; advance(ms: number): void } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

function throwValue(value: unknown): never {
  throw value;
}

t.test('returns the first successful result without sleeping', async (t) => {
  const clock = fakeClock();
  let calls = 0;
  const v = await eventually(
    () => {
      calls++;
      return 42;
    },
    { timeoutMs: 1000, intervalMs: 100, clock },
  );
  t.equal(v, 42);
  t.equal(calls, 1);
  t.same(clock.sleeps, []);
});

t.test('retries failures at the interval until an attempt succeeds', async (t) => {
  const clock = fakeClock();
  let calls = 0;
  const v = await eventually(
    async () => {
      if (++calls < 3) throw new Error(`not yet ${calls}`);
      return 'done';
    },
    { timeoutMs: 1000, intervalMs: 100, clock },
  );
  t.equal(v, 'done');
  t.equal(calls, 3);
  t.same(clock.sleeps, [100, 100]);
});

t.test('gives up at the deadline with the last failure, the attempt count and diagnostics', async (t) => {
  const clock = fakeClock();
  let calls = 0;
  const err = await eventually(
    () => {
      throw new Error(`failure ${++calls}`);
    },
    {
      what: 'deployment/echo available',
      timeoutMs: 1000,
      intervalMs: 300,
      clock,
      diagnose: async () => 'DESCRIBE OUTPUT',
    },
  ).catch((e: unknown) => e);
  t.type(err, EventuallyTimeoutError);
  const e = err as EventuallyTimeoutError;
  // 300 + 300 + 300 + 100: the last pause is cut so the final attempt happens at the deadline.
  t.same(clock.sleeps, [300, 300, 300, 100]);
  t.equal(e.attempts, 5);
  t.equal(calls, 5);
  t.match(e.message, /^deployment\/echo available: not reached within 1000 ms \(5 attempts\)/);
  t.match(e.message, /last failure: failure 5/);
  t.match(e.message, /--- diagnostics ---\nDESCRIBE OUTPUT/);
  t.equal(e.diagnostics, 'DESCRIBE OUTPUT');
  t.equal((e.lastError as Error).message, 'failure 5');
});

t.test('time spent inside attempts counts against the deadline', async (t) => {
  const clock = fakeClock();
  let calls = 0;
  await t.rejects(
    eventually(
      () => {
        calls++;
        clock.advance(400);
        throw new Error('slow failure');
      },
      { timeoutMs: 1000, intervalMs: 100, clock },
    ),
    EventuallyTimeoutError,
  );
  // t=400 fail, sleep 100, t=900 fail, sleep 100, t=1400 fail -> past the deadline.
  t.equal(calls, 3);
  t.same(clock.sleeps, [100, 100]);
});

t.test('makes one attempt even with a zero timeout', async (t) => {
  const clock = fakeClock();
  t.equal(await eventually(() => 'once', { timeoutMs: 0, intervalMs: 100, clock }), 'once');
  const err = await eventually(
    () => {
      throw new Error('never');
    },
    { timeoutMs: 0, intervalMs: 100, clock },
  ).catch((e: unknown) => e);
  t.type(err, EventuallyTimeoutError);
  t.equal((err as EventuallyTimeoutError).attempts, 1);
});

t.test('a failing diagnose is reported in the message instead of replacing the error', async (t) => {
  const err = (await eventually(
    () => {
      throw new Error('still pending');
    },
    {
      timeoutMs: 0,
      intervalMs: 1,
      clock: fakeClock(),
      diagnose: async () => {
        throw new Error('kubectl describe exploded');
      },
    },
  ).catch((e: unknown) => e)) as EventuallyTimeoutError;
  t.match(err.message, /last failure: still pending/);
  t.match(err.message, /collecting diagnostics failed: kubectl describe exploded/);
});

t.test('non-Error throws are described too', async (t) => {
  const err = (await eventually(
    () => throwValue('a string'),
    { timeoutMs: 0, intervalMs: 1, clock: fakeClock() },
  ).catch((e: unknown) => e)) as EventuallyTimeoutError;
  t.match(err.message, /last failure: a string/);
  t.notMatch(err.message, /diagnostics/);
});

t.test('works with the real clock', async (t) => {
  const start = realClock.now();
  let calls = 0;
  const v = await eventually(
    () => {
      if (++calls < 3) throw new Error('not yet');
      return calls;
    },
    { timeoutMs: 5_000, intervalMs: 10 },
  );
  t.equal(v, 3);
  t.ok(realClock.now() - start >= 15, 'waited between attempts');
});
