/**
 * A bounded poll: the e2e suites wait for cluster state with this instead of sleeping
 * (STYLE convention 8).
 */

/** Time, passed in so the unit tests can run the poll loop without waiting. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface EventuallyOptions {
  /** Give up once this long has passed since the first attempt began. */
  readonly timeoutMs: number;
  /** Pause between the end of one failed attempt and the start of the next. */
  readonly intervalMs: number;
  /** What is being waited for, e.g. "deployment echo available"; starts the timeout message. */
  readonly what?: string;
  /**
   * Called once on timeout; its text (e.g. `kubectl describe` and events) is appended to the
   * error so a failed wait explains itself. Its own failure is reported, not thrown.
   */
  readonly diagnose?: () => Promise<string>;
  readonly clock?: Clock;
}

/** Thrown when `eventually` gives up; `lastError` is the last attempt's failure. */
export class EventuallyTimeoutError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    readonly lastError: unknown,
    readonly diagnostics: string | undefined,
  ) {
    super(message, { cause: lastError });
    this.name = 'EventuallyTimeoutError';
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Calls `attempt` until it returns without throwing, and returns what it returned. An attempt
 * "fails" by throwing (typically a failed assertion or a kubectl error); the last failure goes
 * into the timeout error. There is always at least one attempt, and one more is made at the
 * deadline if the interval would overshoot it.
 *
 * An attempt is not interrupted: every attempt must bound itself (kubectl calls and HTTP
 * requests in these helpers all carry their own timeouts), or a hung attempt hangs the poll.
 */
export async function eventually<T>(attempt: () => Promise<T> | T, options: EventuallyOptions): Promise<T> {
  const clock = options.clock ?? realClock;
  const deadline = clock.now() + options.timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      return await attempt();
    } catch (err) {
      const remaining = deadline - clock.now();
      if (remaining <= 0) {
        let diagnostics: string | undefined;
        if (options.diagnose) {
          try {
            diagnostics = await options.diagnose();
          } catch (diagErr) {
            diagnostics = `(collecting diagnostics failed: ${describeError(diagErr)})`;
          }
        }
        const what = options.what ?? 'condition';
        const message =
          `${what}: not reached within ${options.timeoutMs} ms (${attempts} attempts); ` +
          `last failure: ${describeError(err)}` +
          (diagnostics === undefined ? '' : `\n--- diagnostics ---\n${diagnostics}`);
        throw new EventuallyTimeoutError(message, attempts, err, diagnostics);
      }
      await clock.sleep(Math.min(options.intervalMs, remaining));
    }
  }
}
