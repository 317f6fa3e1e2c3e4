import { Socket } from 'node:net';

/**
 * How much a socket reads at once when it reads into a reused buffer. Node's own reads take at
 * most 64 KiB, each into a fresh allocation; on loopback a relay moving 1 GB spent about half the
 * CPU with 256 KiB reads into one reused buffer (docs/benchmarks.md, "Reads into a reused buffer").
 */
export const REUSED_READ_BYTES = 256 * 1024;

/** What a socket that reads into a reused buffer does with its bytes. */
export interface ReusedReadSink {
  /**
   * One read's bytes: a view of the buffer the next read fills, unless `holds()` says something
   * still refers to them. Returns false to stop reading until the socket's `resume()`.
   */
  readonly data: (view: Buffer) => boolean;
  /**
   * Whether anything may still refer to the last view handed to `data` (a write queued rather
   * than done, bytes buffered in a stream). When it does, the next read gets a fresh buffer.
   */
  readonly holds: () => boolean;
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
 * Makes `socket` read into one buffer of `size` bytes that it reuses from read to read, handing
 * each read to `sink.data` instead of emitting 'data'. Its 'end', 'error' and 'close' events, its
 * writes, `pause()` and `resume()` are as before. A fresh buffer is taken only after a read whose
 * bytes `sink.holds()` says are still referred to.
 *
 * Returns false, and changes nothing, when the socket cannot: it has read bytes nobody consumed
 * yet, someone else listens for its 'data', it reads into a buffer already, it is a TLS socket, or
 * the runtime keeps its sockets' reads otherwise. The caller then reads it as any stream.
 */
export function readIntoReusedBuffer(socket: Socket, sink: ReusedReadSink, size = REUSED_READ_BYTES): boolean {
  if (!(socket instanceof Socket) || 'encrypted' in socket || socket.destroyed) return false;
  if (socket.readableLength > 0 || socket.listenerCount('data') > 0) return false;
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') return false;
  const keys = readSymbols(socket);
  if (keys === null) return false;
  const slots = socket as unknown as Record<symbol, unknown>;
  if (slots[keys.buffer] !== null && slots[keys.buffer] !== undefined) return false;
  let buffer = Buffer.allocUnsafe(size);
  slots[keys.buffer] = buffer;
  // Node asks for the next buffer after every read; a new one hands the handle another to fill.
  slots[keys.generator] = (): Buffer => buffer;
  slots[keys.callback] = (length: number, filled: Buffer): boolean => {
    const more = sink.data(filled.subarray(0, length));
    if (sink.holds()) buffer = Buffer.allocUnsafe(size);
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
