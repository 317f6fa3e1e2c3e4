/**
 * The one retry delay of every reconnect loop (watches of the API server, the agent's session
 * with the traffic-manager, the daemon's with it): exponential with full jitter, capped, reset
 * after a healthy period, and abortable.
 *
 * Full jitter (a delay drawn uniformly from [0, min(cap, initial * 2^attempt)]) spreads the
 * retries of many clients that lost the same server at the same moment, so a restarted API
 * server or traffic-manager is not met by all of them at once.
 */

/** The timer a Backoff waits on; the cluster programs' Clock has this shape, so they pass theirs. */
export interface BackoffClock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; the returned function cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

/** How a loop backs off. */
export interface BackoffPolicy {
  /** The ceiling of the first delay (the delay itself is drawn from [0, initialMs]). */
  readonly initialMs: number;
  /** The ceiling no delay exceeds, however many attempts failed. */
  readonly maxMs: number;
  /**
   * How long a success must last before the next failure starts again from `initialMs`; a
   * connection that breaks sooner (a server that accepts and then drops) keeps backing off.
   * Default: `maxMs`.
   */
  readonly resetAfterMs?: number;
}

export interface BackoffOptions extends BackoffPolicy {
  /** Default: the real clock (Date.now and setTimeout). */
  readonly clock?: BackoffClock;
  /** A number in [0, 1); default Math.random. Tests pass a fixed one. */
  readonly random?: () => number;
}

/** The real timer; a pending retry keeps the process alive, as any awaited timer would. */
const realClock: BackoffClock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    return () => clearTimeout(handle);
  },
};

/**
 * The delays of one retry loop. Call `next()` (or `wait()`) after each failure and `succeeded()`
 * when an attempt worked (a watch listed, a session arrived):
 *
 * ```ts
 * const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
 * while (!signal.aborted) {
 *   try { await connect(); backoff.succeeded(); await serve(); } catch { ... }
 *   if (!(await backoff.wait(signal))) break;
 * }
 * ```
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  readonly #clock: BackoffClock;
  readonly #random: () => number;
  #failures = 0;
  #healthySince: number | undefined;
  #lastDelayMs = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs (got ${options.initialMs} and ${options.maxMs})`);
    }
    this.#initialMs = options.initialMs;
    this.#maxMs = options.maxMs;
    this.#resetAfterMs = options.resetAfterMs ?? options.maxMs;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
  }

  /** Consecutive failures counted so far (0 after a reset). */
  get failures(): number {
    return this.#failures;
  }

  /** The delay the latest `next()` (or `wait()`) drew, for a log line. */
  get lastDelayMs(): number {
    return this.#lastDelayMs;
  }

  /** The ceiling of the next delay: min(maxMs, initialMs * 2^failures). */
  get ceilingMs(): number {
    // 2^31 and more would overflow nothing, but there is no point computing past the cap.
    const exponent = Math.min(this.#failures, 31);
    return Math.min(this.#maxMs, this.#initialMs * 2 ** exponent);
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  next(): number {
    if (this.#healthySince !== undefined && this.#clock.now() - this.#healthySince >= this.#resetAfterMs) this.#failures = 0;
    this.#healthySince = undefined;
    const delay = Math.floor(this.#random() * this.ceilingMs);
    this.#failures++;
    this.#lastDelayMs = delay;
    return delay;
  }

  /**
   * An attempt worked. The failure count is kept until the success has lasted `resetAfterMs`,
   * so only a healthy period (measured at the next failure) starts the delays over.
   */
  succeeded(): void {
    this.#healthySince ??= this.#clock.now();
  }

  /** Starts over from `initialMs` at once (a configuration change, a user's explicit retry). */
  reset(): void {
    this.#failures = 0;
    this.#healthySince = undefined;
  }

  /**
   * Records a failure and waits the delay `next()` draws. Resolves true when the wait is over,
   * false as soon as `signal` aborts (at once when it already has); never rejects.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted === true) return Promise.resolve(false);
    const delay = this.next();
    return new Promise((resolve) => {
      const onAbort = (): void => {
        cancel();
        resolve(false);
      };
      const cancel = this.#clock.setTimer(delay, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
