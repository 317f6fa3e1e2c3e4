import type { Duplex } from 'node:stream';
import type { ConnectionTap, TappedConnection, TapSummary } from './forwarder.js';

/**
 * How many of a connection's bytes may wait for a wiretap's workstation. Past this the copy of
 * that connection is given up: the rest of its bytes are counted as dropped, never waited for,
 * so a slow or absent local process costs the caller nothing.
 */
export const WIRETAP_BUFFER_BYTES = 1024 * 1024;

/**
 * How long the copy may still deliver what it holds once the connection itself has closed;
 * past it the copy is cut (its workstation was slow to take the last bytes or to close).
 */
export const WIRETAP_LINGER_MS = 10_000;

/** What one copied connection came to, once both it and its copy are done. */
export interface WiretapOutcome {
  readonly interceptId: string;
  readonly source: string;
  readonly startedAt: number;
  /** Bytes from the caller handed to the copy, and those not (given up, or the copy failed). */
  readonly copiedBytes: number;
  readonly droppedBytes: number;
  /** Why the copy failed or was given up; undefined when all of it went. */
  readonly problem: string | undefined;
  /** The connection's own summary (bytes both ways, its duration, who answered). */
  readonly connection: TapSummary;
}

export interface WiretapPorts {
  /** A tunnel to the wiretap's owner, as for an intercept; undefined without a session. */
  readonly openTunnel: () => Duplex | undefined;
  /** Called once per connection, when it and its copy have ended. */
  readonly done: (outcome: WiretapOutcome) => void;
  readonly setTimer?: (ms: number, fn: () => void) => () => void;
}

/**
 * A wiretap's copy of one connection: the caller's bytes go to the wiretap's owner as well as to
 * whoever answers; what the owner's process sends back is read and discarded.
 *
 * Nothing here can slow the connection: the bytes are copied as they pass and written on at the
 * end of the event loop's turn (the tunnel is opened then too, off the accept path); a tunnel that
 * cannot take them within WIRETAP_BUFFER_BYTES is cut and the rest counted as dropped. A copy that
 * fails (no session, the owner's process not listening) drops what it had not yet delivered: all
 * of it when the failure comes before the end, since the tunnel cannot say how much arrived.
 */
export class WiretapCopy implements ConnectionTap {
  readonly #interceptId: string;
  readonly #connection: TappedConnection;
  readonly #ports: WiretapPorts;
  #tunnel: Duplex | undefined;
  #pending: Buffer[] = [];
  #flushScheduled = false;
  #copied = 0;
  #dropped = 0;
  #problem: string | undefined;
  #given = false;
  #summary: TapSummary | undefined;
  #tunnelDone = false;
  #reported = false;
  #cancelLinger: (() => void) | undefined;

  constructor(interceptId: string, connection: TappedConnection, ports: WiretapPorts) {
    this.#interceptId = interceptId;
    this.#connection = connection;
    this.#ports = ports;
  }

  fromCaller(piece: Uint8Array): void {
    if (this.#given) {
      this.#dropped += piece.length;
      return;
    }
    const waiting = (this.#tunnel?.writableLength ?? 0) + this.#pendingBytes();
    if (waiting + piece.length > WIRETAP_BUFFER_BYTES) {
      this.#giveUp(`the workstation took less than ${WIRETAP_BUFFER_BYTES} bytes behind the caller`);
      this.#dropped += piece.length;
      return;
    }
    this.#pending.push(Buffer.from(piece));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  closed(summary: TapSummary): void {
    this.#summary = summary;
    if (this.#given || this.#tunnel === undefined) {
      // Nothing was copied (no bytes yet) or the copy is over: end it now.
      this.#flush();
      this.#tunnel?.end();
      if (this.#tunnel === undefined) this.#tunnelDone = true;
      this.#maybeReport();
      return;
    }
    if (!this.#flushScheduled) this.#tunnel.end();
    const setTimer = this.#ports.setTimer ?? defaultTimer;
    this.#cancelLinger = setTimer(WIRETAP_LINGER_MS, () => {
      this.#problem ??= `the workstation had not closed its copy ${WIRETAP_LINGER_MS / 1000} s after the connection ended`;
      this.#tunnel?.destroy();
    });
  }

  #pendingBytes(): number {
    let n = 0;
    for (const b of this.#pending) n += b.length;
    return n;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0 || this.#given) return;
    const tunnel = this.#tunnel ?? this.#open();
    if (tunnel === undefined) return;
    const pieces = this.#pending;
    this.#pending = [];
    for (const piece of pieces) {
      tunnel.write(piece);
      this.#copied += piece.length;
    }
    if (this.#summary !== undefined) tunnel.end();
  }

  #open(): Duplex | undefined {
    let tunnel: Duplex | undefined;
    try {
      tunnel = this.#ports.openTunnel();
    } catch (err: unknown) {
      this.#giveUp(`cannot open a tunnel: ${(err as Error).message}`);
      return undefined;
    }
    if (tunnel === undefined) {
      this.#giveUp('no session with the traffic-manager');
      return undefined;
    }
    this.#tunnel = tunnel;
    // The workstation's answer is not the caller's: read and let go.
    tunnel.on('data', () => {});
    tunnel.on('error', (err: Error) => {
      if (!this.#tunnelDone) this.#fail(err.message);
    });
    tunnel.once('close', () => {
      if (!tunnel.writableFinished && !this.#tunnelDone && this.#problem === undefined) this.#fail('the copy was cut before its end');
      this.#tunnelDone = true;
      this.#cancelLinger?.();
      this.#maybeReport();
    });
    return tunnel;
  }

  /** The copy failed: what it had not surely delivered is dropped (all of it before the connection ended). */
  #fail(message: string): void {
    this.#problem ??= message;
    if (!this.#given) {
      this.#given = true;
      this.#dropped += this.#copied + this.#pendingBytes();
      this.#copied = 0;
      this.#pending = [];
    }
  }

  #giveUp(problem: string): void {
    this.#problem ??= problem;
    this.#given = true;
    this.#dropped += this.#pendingBytes();
    this.#pending = [];
    this.#tunnel?.destroy();
  }

  #maybeReport(): void {
    if (this.#reported || this.#summary === undefined || !this.#tunnelDone) return;
    this.#reported = true;
    this.#ports.done({
      interceptId: this.#interceptId,
      source: this.#connection.source,
      startedAt: this.#connection.startedAt,
      copiedBytes: this.#copied,
      droppedBytes: this.#dropped,
      problem: this.#problem,
      connection: this.#summary,
    });
  }
}

function defaultTimer(ms: number, fn: () => void): () => void {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
}
