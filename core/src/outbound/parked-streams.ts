/**
 * The daemon's end of the outbound fast path (manager.proto, "Outbound fast path"): a few streams
 * kept parked at the traffic-manager's dial port, each a port-forward of its own, so that a new TCP
 * flow finds one ready and crosses one port-forward without gRPC. A stream carries one flow; we
 * park a new one as soon as one is taken.
 *
 * Nothing depends on this: with no stream parked (none opened yet, all in use, the port-forward
 * refused, the manager gone), the flow server takes an Outbound call. Failures are retried with a
 * backoff, so that a manager that went away is found again once the session is back, and are
 * reported once per outage.
 */
import type { Duplex } from 'node:stream';
import { Backoff } from '../backoff.js';
import { DIAL_PORT_PARKED } from '../contracts.js';
import { DirectStream } from '../direct-stream.js';
import type { Logger } from '../daemon/logger.js';

/** Enough for a burst of parallel connections (a browser opens six); each is one port-forward stream. */
export const PARKED_STREAMS = 4;
/**
 * How many streams we open per second, sustained, with a burst of PARK_BURST. Each is a
 * WebSocket of its own to the API server (a TLS handshake, a local port, a stream set up by the
 * kubelet): a client making hundreds of short connections a second would otherwise make as many
 * port-forwards, which cost more CPU than the flows, and on a workstation with few local ports
 * (the e2e suite's 500) ran out of them. Flows beyond the budget take Outbound calls, which cost
 * no new port-forward; long flows, where the fast path pays off, are rarely that many.
 */
export const PARK_RATE_PER_S = 4;
export const PARK_BURST = 8;
/** A parked stream that dies sooner than this counts as a failure (backoff), not as wear. */
const SHORT_LIVED_MS = 1000;
/** How long a new stream may take to show that the manager is at its end (DIAL_PORT_PARKED). */
const PARKED_TIMEOUT_MS = 10_000;

export interface ParkedStreamsDeps {
  /** Opens one stream to the manager's dial port (a port-forward); rejects when it cannot. */
  readonly open: () => Promise<Duplex>;
  readonly log: Logger;
  readonly size?: number;
  /**
   * Retries after failures on core's Backoff (jittered, doubling from `initialMs`). At most 10 s: a manager that restarts is
   * back within seconds, and until then every flow pays the slower path.
   */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** PARK_RATE_PER_S and PARK_BURST unless a test says otherwise. */
  readonly rate?: { readonly perSecond: number; readonly burst: number };
}

export class ParkedStreams {
  readonly #deps: ParkedStreamsDeps;
  readonly #size: number;
  readonly #backoff: Backoff;
  readonly #idle = new Set<DirectStream>();
  #opening = 0;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #rate: { readonly perSecond: number; readonly burst: number };
  /** Streams we may open now (a token bucket), as of #tokensAt. */
  #tokens: number;
  #tokensAt = Date.now();
  /** Set while parking waits for the budget. */
  #refill: NodeJS.Timeout | undefined;
  /** Whether the current outage was reported (and not yet followed by a success). */
  #reported = false;
  /** Checked whenever a stream is parked (see whenParked); each says whether it is done. */
  readonly #waiters = new Set<() => boolean>();

  constructor(deps: ParkedStreamsDeps) {
    this.#deps = deps;
    this.#size = deps.size ?? PARKED_STREAMS;
    this.#backoff = new Backoff(deps.backoff ?? { initialMs: 500, maxMs: 10_000 });
    this.#rate = deps.rate ?? { perSecond: PARK_RATE_PER_S, burst: PARK_BURST };
    this.#tokens = this.#rate.burst;
  }

  /** Streams parked now. */
  get parked(): number {
    return this.#idle.size;
  }

  /** Starts parking. */
  start(): void {
    this.#fill();
  }

  /** Resolves once at least `n` streams are parked (for tests and for waiting at start-up). */
  whenParked(n = 1): Promise<void> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        if (this.#idle.size < n) return false;
        resolve();
        return true;
      };
      if (!check()) this.#waiters.add(check);
    });
  }

  /**
   * A parked stream for one flow, or undefined when none is ready; a replacement is parked in
   * the background. The caller sends the header and owns the stream from here on.
   */
  take(): DirectStream | undefined {
    for (const stream of this.#idle) {
      this.#idle.delete(stream);
      if (stream.destroyed) continue;
      this.#healthy();
      this.#fill();
      return stream;
    }
    this.#fill();
    return undefined;
  }

  /** Closes every parked stream and parks no more; flows already under way run to their end. */
  close(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#refill);
    for (const stream of this.#idle) stream.destroy();
    this.#idle.clear();
  }

  #fill(): void {
    const now = Date.now();
    this.#tokens = Math.min(this.#rate.burst, this.#tokens + ((now - this.#tokensAt) * this.#rate.perSecond) / 1000);
    this.#tokensAt = now;
    while (!this.#stopped && this.#retry === undefined && this.#idle.size + this.#opening < this.#size) {
      if (this.#tokens < 1) {
        if (this.#refill === undefined) {
          this.#refill = setTimeout(() => {
            this.#refill = undefined;
            this.#fill();
          }, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate.perSecond));
          this.#refill.unref();
        }
        return;
      }
      this.#tokens--;
      this.#openOne();
    }
  }

  #openOne(): void {
    this.#opening++;
    this.#deps
      .open()
      .then(async (raw) => {
        try {
          await awaitParked(raw, PARKED_TIMEOUT_MS);
        } catch (err: unknown) {
          raw.destroy();
          throw err;
        }
        return raw;
      })
      .then(
        (raw) => {
          this.#opening--;
          if (this.#stopped) {
            raw.destroy();
            return;
          }
          this.#park(raw);
        },
        (err: unknown) => {
          this.#opening--;
          this.#failed(err instanceof Error ? err : new Error(String(err)));
        },
      );
  }

  #park(raw: Duplex): void {
    const stream = new DirectStream(raw);
    // awaitParked paused it; the stream reads from here on (and pauses it when its reader lags).
    raw.resume();
    // A parked stream's error is its end (below); once taken, the flow handles them.
    stream.on('error', () => undefined);
    this.#idle.add(stream);
    const parkedAt = Date.now();
    stream.once('close', () => {
      // Still ours: it died while parked (the manager or the port-forward went away).
      if (!this.#idle.delete(stream) || this.#stopped) return;
      if (Date.now() - parkedAt < SHORT_LIVED_MS) {
        this.#failed(new Error('the parked stream closed at once'));
      } else {
        this.#healthy();
        this.#fill();
      }
    });
    for (const check of [...this.#waiters]) if (check()) this.#waiters.delete(check);
  }

  /**
   * A stream lasted or was used: the manager's dial port works. (Parking alone proves little: a
   * port-forward opens before its pod is asked for the port.)
   */
  #healthy(): void {
    this.#backoff.reset();
    if (this.#reported) {
      this.#reported = false;
      this.#deps.log('info', 'outbound fast path: streams are parked at the traffic-manager again');
    }
  }

  #failed(err: Error): void {
    if (this.#stopped) return;
    if (!this.#reported) {
      this.#reported = true;
      this.#deps.log('warn', `outbound fast path: cannot park streams at the traffic-manager (${err.message}); TCP flows take Outbound calls meanwhile`);
    }
    if (this.#retry !== undefined) return;
    const delay = this.#backoff.next();
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#fill();
    }, delay);
    this.#retry.unref();
  }
}

/**
 * Reads the manager's first frame off a new stream, before a DirectStream wraps it, and resolves
 * once it is DIAL_PORT_PARKED; the stream is left paused, with anything read past the frame put
 * back. Rejects when the stream ends, fails, says something else, or stays silent for `timeoutMs`.
 */
export function awaitParked(raw: Duplex, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('close', onEnd);
      raw.off('error', onError);
      raw.pause();
      if (err !== undefined) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? Buffer.from(chunk) : Buffer.concat([seen, chunk]);
      if (seen.length < 4) return;
      const length = seen.readUInt32BE(0);
      if (length > MAX_PARKED_FRAME_BYTES) return done(new Error('the dial port sent something else than a parked frame'));
      if (seen.length < 4 + length) return;
      const body = seen.subarray(4, 4 + length).toString('utf8');
      const rest = seen.subarray(4 + length);
      if (body !== DIAL_PORT_PARKED) return done(new Error(`the dial port sent ${JSON.stringify(body.slice(0, 80))} instead of ${DIAL_PORT_PARKED}`));
      done();
      if (rest.length > 0) raw.unshift(rest);
    };
    const onEnd = (): void => done(new Error('the stream closed before the traffic-manager took it'));
    const onError = (err: Error): void => done(err);
    const timer = setTimeout(() => done(new Error(`the traffic-manager did not take the stream within ${timeoutMs / 1000} s`)), timeoutMs);
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('close', onEnd);
    raw.once('error', onError);
  });
}

/** DIAL_PORT_PARKED is a few bytes; a longer frame is not from a dial port. */
const MAX_PARKED_FRAME_BYTES = 1024;
