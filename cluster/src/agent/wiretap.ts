import type { Duplex } from 'node:stream';
import { COPY_KIND, CopyFrameReader, encodeCopyFrame } from '@telepresence-ts/core/copy-frames';
import type { ConnectionTap, TappedConnection, TapSummary } from './forwarder.js';

/**
 * How many bytes may wait for a wiretap's workstation, over all the connections it copies. Past
 * this a connection's copy is given up: the rest of its bytes are counted as dropped, never
 * waited for, so a slow or absent local process costs the callers nothing.
 */
export const WIRETAP_BUFFER_BYTES = 1024 * 1024;

/**
 * How long a copy may wait, once its connection has closed, for the workstation to say how it
 * ended; past it the copy is reported as it stands.
 */
export const WIRETAP_LINGER_MS = 10_000;

/**
 * How long frames gather before they are written to the copy stream. Each write wakes every
 * process the stream crosses (the kubelet, the API server, the daemon), all on the app's node or
 * beside it: written as they come, a copy costs those wake-ups per request, and the caller pays
 * for that CPU in latency; gathered, a copy reaches the workstation at most this much later.
 */
export const COPY_GATHER_MS = 10;

/** Gathered frames are written at once when they reach this many bytes. */
export const COPY_GATHER_BYTES = 64 * 1024;

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
  /** The connection's own summary (bytes both ways, its duration). */
  readonly connection: TapSummary;
}

/** What the channel tells a copy about its connection's fate on the workstation. */
interface CopyListener {
  settled(problem: string | undefined): void;
}

/**
 * The one stream of a wiretap (in this agent) that carries the copies of all its connections
 * (core/src/copy-frames.ts). Opened when the first copy needs it and again after it ends; when
 * it ends, every copy still on it has failed.
 */
export class CopyChannel {
  readonly #open: () => Duplex | undefined;
  #stream: Duplex | undefined;
  #next = 1;
  readonly #copies = new Map<number, CopyListener>();
  #closed = false;
  #gathered: Buffer[] = [];
  #gatheredBytes = 0;
  #gatherTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(open: () => Duplex | undefined) {
    this.#open = open;
  }

  /** Bytes gathered or written and not yet taken by the stream. */
  get waiting(): number {
    return (this.#stream?.writableLength ?? 0) + this.#gatheredBytes;
  }

  /** A number for a new connection's copy, or undefined when no stream can be had (no session). */
  attach(listener: CopyListener): number | undefined {
    if (this.#closed) return undefined;
    const stream = this.#stream ?? this.#start();
    if (stream === undefined) return undefined;
    const n = this.#next++;
    this.#copies.set(n, listener);
    return n;
  }

  data(n: number, piece: Uint8Array): void {
    this.#gather(encodeCopyFrame(n, COPY_KIND.data, piece));
  }

  end(n: number): void {
    this.#gather(encodeCopyFrame(n, COPY_KIND.end));
  }

  /** The copy was given up: the workstation drops it; nothing more is heard of it. */
  abort(n: number): void {
    this.#copies.delete(n);
    this.#gather(encodeCopyFrame(n, COPY_KIND.abort));
  }

  #gather(frame: Buffer): void {
    if (this.#stream === undefined) return;
    this.#gathered.push(frame);
    this.#gatheredBytes += frame.length;
    if (this.#gatheredBytes >= COPY_GATHER_BYTES) this.#flush();
    else this.#gatherTimer ??= setTimeout(() => this.#flush(), COPY_GATHER_MS);
  }

  #flush(): void {
    if (this.#gatherTimer !== undefined) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    const frames = this.#gathered;
    this.#gathered = [];
    this.#gatheredBytes = 0;
    if (frames.length > 0 && this.#stream !== undefined && !this.#stream.destroyed) this.#stream.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  /** The wiretap ended: its stream goes, and copies still on it are settled as failed. */
  close(): void {
    this.#closed = true;
    if (this.#gatherTimer !== undefined) clearTimeout(this.#gatherTimer);
    this.#gathered = [];
    this.#gatheredBytes = 0;
    this.#stream?.destroy();
    this.#failAll('the wiretap ended');
  }

  #start(): Duplex | undefined {
    let stream: Duplex | undefined;
    try {
      stream = this.#open();
    } catch {
      stream = undefined;
    }
    if (stream === undefined) return undefined;
    this.#stream = stream;
    const reader = new CopyFrameReader();
    stream.on('data', (piece: Buffer) => {
      let frames;
      try {
        frames = reader.push(piece);
      } catch (err: unknown) {
        stream.destroy(err as Error);
        return;
      }
      for (const frame of frames) {
        const listener = this.#copies.get(frame.connection);
        if (listener === undefined) continue;
        this.#copies.delete(frame.connection);
        listener.settled(frame.kind === COPY_KIND.failed ? frame.payload.toString('utf8') || 'the workstation could not take the copy' : undefined);
      }
    });
    let problem: string | undefined;
    stream.on('error', (err: Error) => (problem ??= err.message));
    stream.once('close', () => {
      if (this.#stream === stream) {
        this.#stream = undefined;
        this.#gathered = [];
        this.#gatheredBytes = 0;
      }
      this.#failAll(problem ?? 'the copy stream ended');
    });
    stream.once('end', () => stream.end());
    return stream;
  }

  #failAll(problem: string): void {
    const copies = [...this.#copies.values()];
    this.#copies.clear();
    for (const listener of copies) listener.settled(problem);
  }
}

export interface WiretapCopyPorts {
  readonly channel: CopyChannel;
  /** Called once per connection, when it and its copy are done. */
  readonly done: (outcome: WiretapOutcome) => void;
  readonly setTimer?: (ms: number, fn: () => void) => () => void;
}

/**
 * A wiretap's copy of one connection: the caller's bytes go on the wiretap's channel as well as
 * to whoever answers.
 *
 * Nothing here can slow the connection: the bytes are copied as they pass and framed onto the
 * channel at the end of the event loop's turn; a channel more than WIRETAP_BUFFER_BYTES behind
 * makes the copy give up, and the rest is counted as dropped. A copy the workstation could not
 * take (its process not listening, the stream gone) counts all it carried as dropped.
 */
export class WiretapCopy implements ConnectionTap {
  readonly #interceptId: string;
  readonly #connection: TappedConnection;
  readonly #ports: WiretapCopyPorts;
  #n: number | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  #copied = 0;
  #dropped = 0;
  #problem: string | undefined;
  /** No more bytes go: given up, or failed. */
  #stopped = false;
  /** The workstation's word on it (or none to wait for) is in. */
  #settled = false;
  #summary: TapSummary | undefined;
  #reported = false;
  #cancelLinger: (() => void) | undefined;

  constructor(interceptId: string, connection: TappedConnection, ports: WiretapCopyPorts) {
    this.#interceptId = interceptId;
    this.#connection = connection;
    this.#ports = ports;
  }

  fromCaller(piece: Uint8Array): void {
    if (this.#stopped) {
      this.#dropped += piece.length;
      return;
    }
    if (this.#ports.channel.waiting + this.#pendingBytes + piece.length > WIRETAP_BUFFER_BYTES) {
      this.#giveUp(`the workstation was more than ${WIRETAP_BUFFER_BYTES} bytes behind`);
      this.#dropped += piece.length;
      return;
    }
    this.#pending.push(Buffer.from(piece));
    this.#pendingBytes += piece.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  closed(summary: TapSummary): void {
    this.#summary = summary;
    this.#flush();
    if (this.#n === undefined || this.#stopped) {
      // Nothing was copied (no bytes came) or the copy is over: nothing to wait for.
      this.#settled = true;
      this.#report();
      return;
    }
    this.#ports.channel.end(this.#n);
    this.#cancelLinger = (this.#ports.setTimer ?? defaultTimer)(WIRETAP_LINGER_MS, () => {
      this.#problem ??= `the workstation had not closed its copy ${WIRETAP_LINGER_MS / 1000} s after the connection ended`;
      if (this.#n !== undefined) this.#ports.channel.abort(this.#n);
      this.#settled = true;
      this.#report();
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0 || this.#stopped) return;
    if (this.#n === undefined) {
      this.#n = this.#ports.channel.attach({ settled: (problem) => this.#onSettled(problem) });
      if (this.#n === undefined) {
        this.#giveUp('no session with the traffic-manager');
        return;
      }
    }
    const pieces = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const piece of pieces) {
      this.#ports.channel.data(this.#n, piece);
      this.#copied += piece.length;
    }
  }

  /** The workstation's word: done (problem undefined) or failed, which drops all that was copied. */
  #onSettled(problem: string | undefined): void {
    if (problem === undefined && this.#summary === undefined) {
      // The local process closed its side while the caller's connection goes on (an idle
      // keep-alive connection timed out there): later bytes open another copy.
      this.#n = undefined;
      return;
    }
    if (problem !== undefined) {
      this.#problem ??= problem;
      this.#dropped += this.#copied + this.#pendingBytes;
      this.#copied = 0;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#stopped = true;
    }
    this.#settled = true;
    this.#cancelLinger?.();
    this.#report();
  }

  #giveUp(problem: string): void {
    this.#problem ??= problem;
    this.#stopped = true;
    this.#dropped += this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#n !== undefined) this.#ports.channel.abort(this.#n);
  }

  #report(): void {
    if (this.#reported || this.#summary === undefined || !this.#settled) return;
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
