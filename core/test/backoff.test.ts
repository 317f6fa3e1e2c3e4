import t from 'tap';
import { Backoff, type BackoffClock } from '../src/backoff.js';
import * as core from '../src/index.js';

/** A clock that moves only when told: `advance(ms)` fires every timer due, in order. */
class FakeClock implements BackoffClock {
  #now = 1_000_000;
  #seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const id = ++this.#seq;
    this.timers.set(id, { at: this.#now + ms, fn });
    return () => this.timers.delete(id);
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, e]) => e.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = until;
  }
}

/** Settles pending promise callbacks (no time passes: the clock is fake). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('the ceiling doubles per failure up to the cap', (t) => {
  // random() just below 1 draws the ceiling itself (floored), so the sequence shows the ceilings.
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999, clock: new FakeClock() });
  const delays = Array.from({ length: 7 }, () => b.next());
  t.strictSame(delays, [99, 199, 399, 799, 999, 999, 999]);
  t.equal(b.failures, 7);
  t.end();
});

t.test('full jitter: each delay is drawn from [0, ceiling]', (t) => {
  const draws = [0, 0.5, 0.25, 0.999];
  const b = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => draws.shift() ?? 0, clock: new FakeClock() });
  // Ceilings 100, 200, 400, 800 scaled by the draws.
  t.strictSame([b.next(), b.next(), b.next(), b.next()], [0, 100, 100, 799]);
  t.equal(b.lastDelayMs, 799, 'the latest delay, for a log line');
  t.end();
});

t.test('with the real random source every delay stays within its ceiling', (t) => {
  const b = new Backoff({ initialMs: 50, maxMs: 400, clock: new FakeClock() });
  for (let i = 0; i < 200; i++) {
    const ceiling = b.ceilingMs;
    const d = b.next();
    if (!(d >= 0 && d <= ceiling)) t.fail(`delay ${d} outside [0, ${ceiling}] at failure ${i}`);
  }
  t.equal(b.ceilingMs, 400, 'capped');
  t.end();
});

t.test('a success resets the delays only once it has lasted resetAfterMs', (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 100, maxMs: 1000, resetAfterMs: 5000, random: () => 0.999999, clock });
  b.next();
  b.next();
  b.next();
  t.equal(b.ceilingMs, 800);

  b.succeeded();
  clock.advance(4999);
  t.equal(b.next(), 799, 'a connection that broke after 4.999 s keeps backing off');
  t.equal(b.failures, 4);

  b.succeeded();
  clock.advance(5000);
  t.equal(b.next(), 99, 'one that lasted 5 s starts again from initialMs');
  t.equal(b.failures, 1);

  // The healthy period counts from the first success, not from later ones.
  b.succeeded();
  clock.advance(3000);
  b.succeeded();
  clock.advance(2000);
  t.equal(b.next(), 99, 'measured from the first succeeded()');
  t.end();
});

t.test('resetAfterMs defaults to maxMs', (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999, clock });
  b.next();
  b.next();
  b.succeeded();
  clock.advance(999);
  t.equal(b.next(), 399, 'not yet healthy');
  b.succeeded();
  clock.advance(1000);
  t.equal(b.next(), 99, 'healthy');
  t.end();
});

t.test('reset() starts over at once', (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999, clock: new FakeClock() });
  b.next();
  b.next();
  b.reset();
  t.equal(b.failures, 0);
  t.equal(b.next(), 99);
  t.end();
});

t.test('wait() resolves true after the drawn delay, on the given clock', async (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.5, clock });
  let result: boolean | undefined;
  void b.wait().then((r) => (result = r));
  clock.advance(49);
  await flush();
  t.equal(result, undefined, 'not before 50 ms');
  clock.advance(1);
  await flush();
  t.equal(result, true, 'at 50 ms');
  t.equal(b.failures, 1, 'the wait counted a failure');
  t.equal(clock.timers.size, 0, 'no timer left');
});

t.test('wait() resolves false as soon as the signal aborts, and leaves no timer', async (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 1000, maxMs: 1000, random: () => 0.5, clock });
  const ac = new AbortController();
  const waiting = b.wait(ac.signal);
  t.equal(clock.timers.size, 1);
  ac.abort();
  t.equal(await waiting, false);
  t.equal(clock.timers.size, 0, 'the timer was cancelled');
});

t.test('wait() with an already aborted signal resolves false without counting a failure', async (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 100, maxMs: 1000, clock });
  const ac = new AbortController();
  ac.abort();
  t.equal(await b.wait(ac.signal), false);
  t.equal(b.failures, 0);
  t.equal(clock.timers.size, 0);
});

t.test('a wait that ended removes its abort listener', async (t) => {
  const clock = new FakeClock();
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0, clock });
  const ac = new AbortController();
  let removed = 0;
  const remove = ac.signal.removeEventListener.bind(ac.signal);
  ac.signal.removeEventListener = (...args: Parameters<AbortSignal['removeEventListener']>) => {
    removed++;
    remove(...args);
  };
  const waiting = b.wait(ac.signal);
  clock.advance(0);
  t.equal(await waiting, true);
  t.equal(removed, 1, 'a long-lived signal does not gather one listener per retry');
});

t.test('the real clock waits, too', async (t) => {
  const b = new Backoff({ initialMs: 5, maxMs: 5 });
  const started = Date.now();
  t.equal(await b.wait(), true);
  t.ok(Date.now() - started <= 1000, 'within the cap (and some scheduling slack)');
});

t.test('refuses a policy that cannot work', (t) => {
  t.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), RangeError);
  t.throws(() => new Backoff({ initialMs: 100, maxMs: 10 }), RangeError);
  t.throws(() => new Backoff({ initialMs: Number.NaN, maxMs: 10 }), RangeError);
  t.end();
});

t.test('the package entry exports it', (t) => {
  t.equal(core.Backoff, Backoff);
  t.end();
});
