/**
 * The framing of a direct tunnel (manager.proto, "Direct tunnels"): the stream a client parks at an
 * agent's `tunnel_port` and over which the agent later passes one intercepted connection. Shared by
 * the daemon and the traffic-agent, so it depends on nothing but Node.
 *
 * On the wire, both ways: frames of a 4-byte big-endian length and that many bytes. The first
 * frame each way is a JSON header; after it, frames carry the connection's bytes, and a frame of
 * length 0 ends that direction (a half-close, which a Kubernetes port-forward cannot carry by
 * itself: it closes the whole stream when either side ends).
 */
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { pendingWriteBytes, readIntoReusedBuffer } from './reused-reads.js';
import type { ReusingReader } from './splice.js';

/** What a client says first on a stream it parks: whose intercepts it takes. */
export interface DirectHello {
  readonly session: string;
}

/** What an agent says first when it hands the stream an intercepted connection. */
export interface DirectHandoff {
  readonly interceptId: string;
  /** Where the connection came from, for logs: "10.244.0.7:51234". */
  readonly source: string;
  /** The app port the connection came to; a replace's owner maps it to its local port. */
  readonly containerPort?: number;
}

/** Headers are a few hundred bytes; a larger one is not our peer speaking. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** The stream ended, broke, or sent something that is not a direct tunnel. */
export class DirectStreamError extends Error {
  override readonly name = 'DirectStreamError';
}

/**
 * A framed stream over `raw` (a socket, or a port-forward stream), read and written as the plain
 * bytes of one connection once the headers are exchanged.
 *
 * - `sendHeader()` writes this side's header; it must come before any data.
 * - `header` resolves with the peer's header, or rejects when `raw` ends or fails before it.
 * - Data frames are passed on as they arrive, piece by piece, without waiting for whole frames
 *   and without copying; backpressure pauses `raw`. When `raw` is a socket, it reads into a
 *   reused buffer (`readIntoReusedBuffer`): the pieces are views of it, reused once the reader
 *   set with `setHolder` no longer refers to them (`splice` sets one; without, every read gets a
 *   fresh buffer).
 * - `end()` sends the end frame; the peer's end frame ends the readable side. When both
 *   directions are done, `raw` is ended; when `raw` closes before that, this stream is destroyed
 *   with a `DirectStreamError`, and destroying this stream destroys `raw`.
 */
export class DirectStream extends Duplex implements ReusingReader {
  readonly #raw: Duplex;
  /** The next frame's length, gathered here while it is split across chunks. */
  readonly #lengthBytes = Buffer.alloc(4);
  #lengthHave = 0;
  /** How much of what we delivered our reader may still refer to (see `setHolder`). */
  #holder: () => number = () => Infinity;
  /** Bytes of data frames delivered to our reader. */
  #delivered = 0;
  readonly reusesReads: boolean;
  /** Bytes still to come of the current frame. */
  #remaining = 0;
  /** The peer's header while it arrives; undefined once it has. */
  #headerParts: Buffer[] | undefined = [];
  #gotEnd = false;
  /** Our end frame is written. */
  #sentEnd = false;
  #resolveHeader!: (header: Buffer) => void;
  #rejectHeader!: (err: Error) => void;
  readonly header: Promise<Buffer>;

  constructor(raw: Duplex) {
    super({ allowHalfOpen: true });
    this.#raw = raw;
    this.header = new Promise<Buffer>((resolve, reject) => {
      this.#resolveHeader = resolve;
      this.#rejectHeader = reject;
    });
    // Nobody may be waiting for the header (a parked stream that is closed); that is no error.
    this.header.catch(() => undefined);
    const reusing =
      raw instanceof Socket &&
      readIntoReusedBuffer(raw, {
        data: (view) => {
          this.#receive(view);
          return true;
        },
        pending: () => this.readableLength + this.#holder(),
        handed: () => this.#delivered,
      });
    this.reusesReads = reusing;
    if (!reusing) raw.on('data', (chunk: Buffer) => this.#receive(chunk));
    raw.on('end', () => this.#rawGone('the other end closed the stream'));
    raw.on('close', () => this.#rawGone('the stream closed'));
    raw.on('error', (err: Error) => this.#rawGone(err.message));
  }

  /** Both directions ended cleanly. */
  get #done(): boolean {
    return this.#gotEnd && this.#sentEnd;
  }

  setHolder(pending: () => number): void {
    this.#holder = pending;
  }

  /**
   * What was written and may still be referred to rather than sent (see `pendingWriteBytes`):
   * known when `raw` can tell it (a socket, a pod stream).
   */
  get pendingWriteBytes(): number | undefined {
    const raw = pendingWriteBytes(this.#raw);
    return raw === undefined ? undefined : this.writableLength + raw;
  }

  /** Writes this side's header (JSON). */
  sendHeader(header: DirectHello | DirectHandoff): void {
    this.#raw.write(frame(Buffer.from(JSON.stringify(header), 'utf8')));
  }

  #receive(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0 && !this.destroyed) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, rest.length);
        this.#remaining -= take;
        this.#deliver(rest.subarray(0, take));
        rest = rest.subarray(take);
        continue;
      }
      if (this.#gotEnd) {
        this.destroy(new DirectStreamError('the other end sent data after its end'));
        return;
      }
      // A frame's length, possibly split across chunks.
      let length: number;
      if (this.#lengthHave === 0 && rest.length >= 4) {
        length = rest.readUInt32BE(0);
        rest = rest.subarray(4);
      } else {
        const take = Math.min(4 - this.#lengthHave, rest.length);
        rest.copy(this.#lengthBytes, this.#lengthHave, 0, take);
        this.#lengthHave += take;
        rest = rest.subarray(take);
        if (this.#lengthHave < 4) return;
        length = this.#lengthBytes.readUInt32BE(0);
        this.#lengthHave = 0;
      }
      if (this.#headerParts !== undefined) {
        if (length === 0 || length > MAX_HEADER_BYTES) {
          this.destroy(new DirectStreamError(`not a direct tunnel: a header of ${length} bytes`));
          return;
        }
      } else if (length === 0) {
        this.#gotEnd = true;
        this.push(null);
        this.#finishIfDone();
        continue;
      }
      this.#remaining = length;
    }
  }

  #deliver(piece: Buffer): void {
    const parts = this.#headerParts;
    if (parts === undefined) {
      this.#delivered += piece.length;
      if (!this.push(piece)) this.#raw.pause();
      return;
    }
    // A copy: the piece may be a view of a buffer the next read fills.
    parts.push(Buffer.from(piece));
    if (this.#remaining === 0) {
      this.#headerParts = undefined;
      this.#resolveHeader(Buffer.concat(parts));
    }
  }

  #rawGone(reason: string): void {
    const err = new DirectStreamError(reason);
    this.#rejectHeader(err);
    // Once both directions are done, what is still buffered for our reader is read as usual.
    if (this.destroyed || this.#done) return;
    this.destroy(err);
  }

  #finishIfDone(): void {
    if (this.#done) this.#raw.end();
  }

  override _read(): void {
    this.#raw.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  /** Chunks that queued up while `raw` was busy go to it together: one frame each, one write. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const raw = this.#raw;
    let room = true;
    raw.cork();
    for (const { chunk } of chunks) {
      if (chunk.length === 0) continue;
      raw.write(lengthOf(chunk.length));
      room = raw.write(chunk);
    }
    raw.uncork();
    if (room) callback();
    else raw.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#raw.write(lengthOf(0), (err) => {
      if (err) {
        callback(err);
        return;
      }
      this.#sentEnd = true;
      callback();
      this.#finishIfDone();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#rejectHeader(error ?? new DirectStreamError('the stream was closed'));
    if (!this.#done) this.#raw.destroy();
    callback(error);
  }
}

function lengthOf(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function frame(payload: Buffer): Buffer {
  return Buffer.concat([lengthOf(payload.length), payload]);
}

/** Parses a header frame as JSON; a DirectStreamError when it is not an object. */
export function parseHeader(bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new DirectStreamError('not a direct tunnel: its header is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DirectStreamError('not a direct tunnel: its header is not a JSON object');
  }
  return value as Record<string, unknown>;
}
