import { Socket } from 'node:net';

/**
 * The largest read of a socket that reads into reused buffers. Node's own reads take at most
 * 64 KiB, each into a fresh allocation; on loopback a relay moving 1 GB spent about half the CPU
 * with 256 KiB reads into reused buffers (docs/benchmarks.md, "Reads into reused buffers").
 */
export const REUSED_READ_MAX_BYTES = 256 * 1024;

/**
 * Where a socket's reads start: a connection that only ever carries small messages keeps a
 * buffer this small; each read that fills its buffer doubles it, up to the maximum.
 */
export const REUSED_READ_MIN_BYTES = 16 * 1024;

/** Free buffers kept for reuse, per socket. */
const SPARE_BUFFERS = 4;
/** Held buffers tracked for reuse, per socket; older ones are left to the garbage collector. */
const TRACKED_BUFFERS = 8;

/** What a socket that reads into reused buffers does with its bytes. */
export interface ReusedReadSink {
  /**
   * One read's bytes, as a view of a buffer that a later read fills again once `pending()` says
   * nothing refers to them. Returns false to stop reading until the socket's `resume()`.
   */
  readonly data: (view: Buffer) => boolean;
  /**
   * How many of the bytes handed on so far something may still refer to: the newest ones, as a
   * writer's queue holds them, first in, first out. Counting more than that is safe, less is not.
   */
  readonly pending: () => number;
  /**
   * Bytes handed on so far, counted as `pending` counts them; by default every byte read. A sink
   * that keeps some bytes to itself (a frame's length) copies those and counts the rest.
   */
  readonly handed?: () => number;
}

interface ReadSymbols {
  readonly buffer: symbol;
  readonly generator: symbol;
  readonly callback: symbol;
}

let symbols: ReadSymbols | null | undefined;

/**
 * The private keys under which a net.Socket keeps the `onread` option it was made with (the same
 * since the option came, in Node 10). A socket accepted by a server cannot be given that option,
 * so it is set here, on the socket itself; null when this runtime keeps them otherwise.
 */
function readSymbols(socket: Socket): ReadSymbols | null {
  if (symbols !== undefined) return symbols;
  const own = Object.getOwnPropertySymbols(socket);
  const find = (name: string): symbol | undefined => own.find((s) => s.description === name);
  const buffer = find('kBuffer');
  const generator = find('kBufferGen');
  const callback = find('kBufferCb');
  symbols = buffer && generator && callback ? { buffer, generator, callback } : null;
  return symbols;
}

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * Makes `socket` read into buffers it reuses from read to read, handing each read to `sink.data`
 * instead of emitting 'data'. Its 'end', 'error' and 'close' events, its writes, `pause()` and
 * `resume()` are as before.
 *
 * - A read whose bytes `sink.pending()` says may still be referred to (a write queued rather
 *   than done) leaves its buffer alone: the next read goes to a spare one. A held buffer is
 *   spare again once its writer has sent past its last byte; so a busy connection cycles through
 *   a few buffers instead of allocating one per held read, which left 38 MB in the C heap after
 *   2 GB had crossed the agent (15 MB this way).
 * - Buffers start at `REUSED_READ_MIN_BYTES` and double with each read that fills one, up to
 *   `REUSED_READ_MAX_BYTES`: an idle or chatty connection holds 16 KiB, a bulk one 256 KiB.
 *
 * Returns false, and changes nothing, when the socket cannot: it has read bytes nobody consumed
 * yet, someone else listens for its 'data', it reads into a buffer already, it is a TLS socket, or
 * the runtime keeps its sockets' reads otherwise. The caller then reads it as any stream.
 */
/**
 * Set (to true) on a socket whose reads something watches as the stream takes them in (a tap on
 * `push`): such a socket keeps Node's own reads, which reused buffers would go around.
 */
export const READS_OBSERVED = Symbol('telepresence.readsObserved');

export function readIntoReusedBuffer(socket: Socket, sink: ReusedReadSink, max = REUSED_READ_MAX_BYTES): boolean {
  if (!(socket instanceof Socket) || 'encrypted' in socket || socket.destroyed || (socket as unknown as Partial<Record<symbol, unknown>>)[READS_OBSERVED] === true) return false;
  if (socket.readableLength > 0 || socket.listenerCount('data') > 0) return false;
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') return false;
  const keys = readSymbols(socket);
  if (keys === null) return false;
  const slots = socket as unknown as Record<symbol, unknown>;
  if (slots[keys.buffer] !== null && slots[keys.buffer] !== undefined) return false;
  let size = Math.min(REUSED_READ_MIN_BYTES, max);
  let buffer: Buffer = Buffer.allocUnsafe(size);
  let read = 0;
  let handedBefore = 0;
  /** Buffers that may still be referred to, oldest first, each with where its bytes end. */
  const held: Array<{ readonly buffer: Buffer; readonly end: number }> = [];
  const spare: Buffer[] = [];
  const fresh = (): Buffer => {
    for (let b = spare.pop(); b !== undefined; b = spare.pop()) if (b.length === size) return b;
    return Buffer.allocUnsafe(size);
  };
  slots[keys.buffer] = buffer;
  // Node asks for the next buffer after every read; a new one hands the handle another to fill.
  slots[keys.generator] = (): Buffer => buffer;
  slots[keys.callback] = (length: number, filled: Buffer): boolean => {
    const more = sink.data(filled.subarray(0, length));
    read += length;
    const handed = sink.handed?.() ?? read;
    const done = handed - sink.pending();
    for (let h = held[0]; h !== undefined && h.end <= done; h = held[0]) {
      held.shift();
      if (h.buffer.length === size && spare.length < SPARE_BUFFERS) spare.push(h.buffer);
    }
    if (length === filled.length && size < max) size = Math.min(size * 2, max);
    if (handed > handedBefore && handed > done) {
      // Bytes of this read are still referred to: the next read goes elsewhere.
      held.push({ buffer, end: handed });
      if (held.length > TRACKED_BUFFERS) held.shift();
      buffer = fresh();
    } else if (buffer.length !== size) {
      buffer = fresh();
    }
    handedBefore = handed;
    return more;
  };
  handle.useUserBuffer(buffer);
  return true;
}

/**
 * Bytes written to `w` that it may still refer to rather than have copied or sent: a socket's
 * queue, or what a stream over a socket declares (`pendingWriteBytes`). Undefined for a stream
 * that cannot tell, whose writes must then be given bytes of their own.
 */
export function pendingWriteBytes(w: object): number | undefined {
  if (w instanceof Socket) return w.writableLength;
  const declared = (w as { pendingWriteBytes?: unknown }).pendingWriteBytes;
  return typeof declared === 'number' ? declared : undefined;
}
