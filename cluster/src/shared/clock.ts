/**
 * Time as a port: session expiry, tunnel pairing and prepare timeouts all read the time and set
 * timers through this, so tests drive them with a fake clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; the returned function cancels it (idempotent). */
  setTimer(ms: number, fn: () => void): () => void;
}

/** The real clock. Timers are unref'd: a pending expiry must not keep a stopping process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return () => clearTimeout(handle);
  },
};

/**
 * The real clock for a program that runs once and exits (the traffic-manager's `remove-agents`
 * mode): its timers hold the process, since while it waits nothing else may be pending, and an
 * unref'd timer would let Node end the process in the middle of the wait.
 */
export const holdingClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    return () => clearTimeout(handle);
  },
};
