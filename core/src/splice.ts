import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pendingWriteBytes, readIntoReusedBuffer } from './reused-reads.js';

export { READS_OBSERVED } from './reused-reads.js';

/**
 * Sees the bytes of a splice as they pass, each piece before it is written on. A piece may be a
 * view of a buffer that is read into again: it is valid only during the call, so an observer
 * copies what it keeps. Observers must not throw and must return at once: they run on the data path.
 */
export interface SpliceObserver {
  readonly aToB?: (piece: Uint8Array) => void;
  readonly bToA?: (piece: Uint8Array) => void;
}

/** How a spliced pair ended, for logs. */
export interface SpliceResult {
  /** Bytes read from `a` (and written to `b`), and the other way. */
  readonly aToB: number;
  readonly bToA: number;
  /** The first error either side reported, if any. */
  readonly error: Error | undefined;
}

/**
 * Pipes two byte streams into each other until both directions are done, and resolves then.
 *
 * - Backpressure: a reader is paused while the other side's writer is full.
 * - Reused buffers: a socket whose bytes go to a writer that can tell when it no longer refers to
 *   them (a socket, or a stream declaring `pendingWriteBytes`) reads into a few buffers that it
 *   fills again once the writer has sent their bytes (`readIntoReusedBuffer`), and the writer is
 *   not corked.
 * - Batching: what one side delivers within one turn of the event loop goes out to a socket on
 *   the other side in one write, at the end of that turn. A port-forward stream hands over its
 *   pieces a few KiB at a time, and a socket writes each at once (on loopback it has room), at
 *   the cost of a system call and a wake-up of the reader apiece. For that the socket needs
 *   room for a turn's worth: sockets made for a splice take `SPLICE_WINDOW_BYTES` as their
 *   high-water mark (`spliceSocketOptions`), or `pipe` pauses the reader after the first piece.
 *   Other streams are written as their data comes: a framed stream over TLS gathers by itself
 *   what is written while its socket is busy, and holding that back for the turn made its
 *   writes smaller, not larger.
 * - Half-close: the end of one side's data ends the other side's writing (a TCP FIN, or a
 *   TunnelClose), while data still flows the other way; the sockets must allow half-open.
 * - Failure: when one side is destroyed before both of its directions finished (an error, a
 *   reset, a cancelled tunnel), the other is destroyed too, so neither peer waits forever. When
 *   that side's data had ended cleanly, the other first finishes writing it. A side that closed
 *   cleanly both ways is left alone: destroying the other then could drop bytes it still writes.
 */
export function splice(a: Duplex, b: Duplex, observer: SpliceObserver = {}): Promise<SpliceResult> {
  let aToB = 0;
  let bToA = 0;
  let error: Error | undefined;
  const { aToB: seeAToB, bToA: seeBToA } = observer;
  connect(a, b, seeAToB === undefined ? (n) => (aToB += n) : (n, piece) => ((aToB += n), seeAToB(piece)));
  connect(b, a, seeBToA === undefined ? (n) => (bToA += n) : (n, piece) => ((bToA += n), seeBToA(piece)));
  return new Promise((resolve) => {
    let closed = 0;
    const watch = (self: Duplex, other: Duplex): void => {
      // Errors are reported through 'close' (and the result); without a listener they would throw.
      self.on('error', (err: Error) => (error ??= err));
      self.once('close', () => {
        if (!(self.readableEnded && self.writableFinished)) {
          if (!self.readableEnded || self.errored !== null) {
            other.destroy();
          } else if (other.writableFinished) {
            other.destroy();
          } else {
            // Everything `self` sent was passed on, and `other` was told the end: let it flush
            // that before it goes, as a TCP peer closing both ways would.
            other.once('finish', () => other.destroy());
          }
        }
        if (++closed === 2) resolve({ aToB, bToA, error });
      });
    };
    watch(a, b);
    watch(b, a);
  });
}

/**
 * What a socket that a splice writes to may hold before `pipe` pauses the other side: a few
 * turns' worth of reads (see "Batching" above). Node's default is 16 KiB.
 */
export const SPLICE_WINDOW_BYTES = 256 * 1024;

/** Options for a socket (`net.connect`, `net.createServer`) whose data a splice moves. */
export const spliceSocketOptions = { highWaterMark: SPLICE_WINDOW_BYTES } as const;

/** Moves what `from` reads to `to`, ending `to` after it; `count` sees each piece (and its length). */
function connect(from: Duplex, to: Duplex, count: (n: number, piece: Uint8Array) => void): void {
  const pending = (): number => pendingWriteBytes(to) ?? Infinity;
  if (pendingWriteBytes(to) !== undefined && from instanceof Socket) {
    const reusing = readIntoReusedBuffer(from, {
      data: (view) => {
        count(view.length, view);
        if (to.write(view)) return true;
        to.once('drain', () => from.resume());
        return false;
      },
      pending,
    });
    if (reusing) {
      from.once('end', () => to.end());
      // As pipe does: a socket paused until its peer was ready (pauseOnConnect) reads now.
      from.resume();
      return;
    }
  }
  const reader = from as Partial<ReusingReader>;
  if (reader.reusesReads === true && typeof reader.setHolder === 'function' && pendingWriteBytes(to) !== undefined) {
    // Its pieces are views of a buffer it reuses while nobody holds them: no corking here.
    reader.setHolder(pending);
  } else if (to instanceof Socket) {
    // Before pipe's own listener: the socket is corked before pipe writes to it.
    from.on('data', () => corkForThisTurn(to));
  }
  from.on('data', (chunk: Buffer) => count(chunk.length, chunk));
  from.pipe(to);
}

/**
 * A stream whose pieces may be views of a buffer it reuses (a framed stream over a socket that
 * reads with `readIntoReusedBuffer`), which `reusesReads` says. Until a holder is set it assumes
 * its pieces are kept and reads each into a fresh buffer; `pending` tells it how many of the bytes
 * it delivered its reader may still refer to (see `ReusedReadSink.pending`).
 */
export interface ReusingReader {
  readonly reusesReads: boolean;
  setHolder(pending: () => number): void;
}

/** Corks `w` until the I/O of this turn of the event loop is handled, unless it is corked already. */
function corkForThisTurn(w: Duplex): void {
  if (w.writableCorked > 0 || w.destroyed) return;
  w.cork();
  setImmediate(() => w.uncork());
}
