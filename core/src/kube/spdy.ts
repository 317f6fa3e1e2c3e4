/**
 * What a Kubernetes port-forward needs of SPDY/3.1, the protocol kubelets and container runtimes
 * serve port-forwards with: opening streams, data frames both ways, and answering pings.
 *
 * Since Kubernetes 1.30 the API server tunnels it through a WebSocket (subprotocol
 * `SPDY/3.1+portforward.k8s.io`, see pod-stream.ts): binary messages carry the SPDY byte stream,
 * cut anywhere. Reaching the container runtime over SPDY rather than over its own WebSocket
 * (`v4.channel.k8s.io`) matters for bulk data: the runtime's WebSocket reader unmasks byte by byte
 * and regrows a buffer for every message, which cost it about 11 CPU seconds per GB received
 * against about 4 for SPDY.
 *
 * Frames (all integers big-endian):
 * - control: 1 bit set, 15 bits version (3), 16 bits type, 8 bits flags, 24 bits length, body;
 * - data: 1 bit clear, 31 bits stream id, 8 bits flags, 24 bits length, payload.
 * Header blocks are one zlib stream per connection and direction, with SPDY's preset dictionary.
 * We send ours as stored (uncompressed) deflate blocks, which a reader inflates without ever
 * looking into the dictionary; the zlib header still names it by its checksum. The peer's header
 * blocks are skipped: a port-forward learns nothing from them.
 */

export const SPDY_VERSION = 3;
export const FLAG_FIN = 0x01;
export const FRAME_HEADER_BYTES = 8;
/** A frame's length field has 24 bits. */
export const MAX_FRAME_PAYLOAD = 0xffffff;

export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const HEADERS = 8;
export const WINDOW_UPDATE = 9;

/** Adler-32 of SPDY/3's 1423-byte header dictionary, as a zlib header that uses it names it. */
const DICTIONARY_ADLER32 = 0xe3c6a7c2;
/** zlib: deflate with a 32 KiB window (0x78), a preset dictionary and a valid check (0xbb). */
const ZLIB_HEADER = Buffer.from([0x78, 0xbb, ...u32(DICTIONARY_ADLER32)]);
/** An empty stored block. */
const SYNC_FLUSH = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);
/** A stored deflate block holds at most this many bytes. */
const MAX_STORED_BLOCK = 0xffff;

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** Encodes the header blocks of one connection's direction (they share one zlib stream). */
export class HeaderBlockEncoder {
  #started = false;

  encode(headers: ReadonlyArray<readonly [string, string]>): Buffer {
    const raw: Buffer[] = [u32(headers.length)];
    for (const [name, value] of headers) {
      // SPDY wants lower-case names; the peer would reject the block otherwise.
      const n = Buffer.from(name.toLowerCase(), 'utf8');
      const v = Buffer.from(value, 'utf8');
      raw.push(u32(n.length), n, u32(v.length), v);
    }
    const block = Buffer.concat(raw);
    const out: Buffer[] = [];
    if (!this.#started) out.push(ZLIB_HEADER);
    this.#started = true;
    for (let at = 0; at < block.length; at += MAX_STORED_BLOCK) {
      const piece = block.subarray(at, at + MAX_STORED_BLOCK);
      // Not final, type 00 (stored), then LEN and its ones' complement, little-endian.
      const head = Buffer.from([0, piece.length & 0xff, piece.length >> 8, ~piece.length & 0xff, (~piece.length >> 8) & 0xff]);
      out.push(head, piece);
    }
    // An empty stored block, as a zlib sync flush ends with: Go's inflater hands over what it
    // holds only when it reaches the next block, which must be inside this frame.
    out.push(SYNC_FLUSH);
    return Buffer.concat(out);
  }
}

function controlHeader(type: number, flags: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  b.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  b.writeUInt16BE(type, 2);
  b.writeUInt32BE((((flags & 0xff) << 24) | length) >>> 0, 4);
  return b;
}

/** A SYN_STREAM opening `streamId` (odd: ours) with an encoded header block. */
export function synStreamFrame(streamId: number, headerBlock: Buffer, flags = 0): Buffer {
  const body = Buffer.alloc(10);
  body.writeUInt32BE(streamId & 0x7fffffff, 0);
  // Associated stream 0, priority 0, slot 0.
  return Buffer.concat([controlHeader(SYN_STREAM, flags, body.length + headerBlock.length), body, headerBlock]);
}

/** The 8 bytes that go before `length` bytes of data on `streamId`. */
export function dataFrameHeader(streamId: number, length: number, flags = 0): Buffer {
  if (length > MAX_FRAME_PAYLOAD) throw new RangeError(`a SPDY data frame carries at most ${MAX_FRAME_PAYLOAD} bytes, not ${length}`);
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  b.writeUInt32BE(streamId & 0x7fffffff, 0);
  b.writeUInt32BE((((flags & 0xff) << 24) | length) >>> 0, 4);
  return b;
}

/** A control frame as it was received, for answering a PING with itself. */
export function controlFrame(type: number, flags: number, body: Buffer): Buffer {
  return Buffer.concat([controlHeader(type, flags, body.length), body]);
}

export interface FrameHandlers {
  /** A piece of a data frame's payload; `fin` on its last piece when the frame ends the stream. */
  data(streamId: number, payload: Buffer, fin: boolean): void;
  /** A whole control frame (version and size already checked). */
  control(type: number, flags: number, body: Buffer): void;
}

/** The peer's bytes are not SPDY/3 (or ended in the middle of a frame). */
export class SpdyProtocolError extends Error {
  override readonly name = 'SpdyProtocolError';
}

/**
 * The body sizes of the control frames we read, as SPDY/3 fixes them (section 2.6): exact for
 * PING, RST_STREAM, GOAWAY and WINDOW_UPDATE, the fixed part (a minimum) for the others.
 */
const CONTROL_BODY_BYTES: ReadonlyMap<number, { readonly bytes: number; readonly exact: boolean }> = new Map([
  [SYN_STREAM, { bytes: 10, exact: false }],
  [SYN_REPLY, { bytes: 4, exact: false }],
  [RST_STREAM, { bytes: 8, exact: true }],
  [SETTINGS, { bytes: 4, exact: false }],
  [PING, { bytes: 4, exact: true }],
  [GOAWAY, { bytes: 8, exact: true }],
  [HEADERS, { bytes: 4, exact: false }],
  [WINDOW_UPDATE, { bytes: 8, exact: true }],
]);

/**
 * Reads SPDY frames from a byte stream cut anywhere. Data payloads are handed on as they arrive,
 * without waiting for whole frames and without copying; control frames (small) are gathered.
 *
 * A frame that is not SPDY/3 fails the reader: `push` throws a `SpdyProtocolError` once, and
 * from then on the reader ignores what it is given (a chunk in hand may hold more frames, and a
 * reader that went on would read garbage as frames). Control frames of a type SPDY/3 does not
 * define are handed on like the others, for the handler to ignore (section 2.2.1).
 */
export class FrameReader {
  readonly #handlers: FrameHandlers;
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerHave = 0;
  /** Payload bytes still to come of the current frame. */
  #remaining = 0;
  #inFrame = false;
  #control = false;
  #type = 0;
  #flags = 0;
  #streamId = 0;
  #controlParts: Buffer[] = [];
  #failed = false;

  constructor(handlers: FrameHandlers) {
    this.#handlers = handlers;
  }

  /** Reads `chunk`; throws a `SpdyProtocolError` on the first frame that is not SPDY/3, then reads no more. */
  push(chunk: Buffer): void {
    if (this.#failed) return;
    try {
      this.#read(chunk);
    } catch (err: unknown) {
      this.#failed = true;
      throw err;
    }
  }

  /** The byte stream ended: throws when it ended inside a frame (the peer's last frame was cut). */
  end(): void {
    if (this.#failed) return;
    this.#failed = true;
    if (this.#inFrame || this.#headerHave > 0) throw new SpdyProtocolError('the connection ended inside a SPDY frame');
  }

  #read(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0 || (this.#inFrame && this.#remaining === 0)) {
      if (!this.#inFrame) {
        const take = Math.min(FRAME_HEADER_BYTES - this.#headerHave, rest.length);
        rest.copy(this.#header, this.#headerHave, 0, take);
        this.#headerHave += take;
        rest = rest.subarray(take);
        if (this.#headerHave < FRAME_HEADER_BYTES) return;
        this.#headerHave = 0;
        this.#startFrame();
      }
      if (this.#remaining === 0) {
        this.#endFrame(Buffer.alloc(0));
        continue;
      }
      const take = Math.min(this.#remaining, rest.length);
      if (take === 0) return;
      const piece = rest.subarray(0, take);
      rest = rest.subarray(take);
      this.#remaining -= take;
      if (this.#remaining > 0) {
        if (this.#control) this.#controlParts.push(piece);
        else this.#handlers.data(this.#streamId, piece, false);
      } else {
        this.#endFrame(piece);
      }
    }
  }

  #startFrame(): void {
    const first = this.#header.readUInt32BE(0);
    const second = this.#header.readUInt32BE(4);
    const control = (first & 0x80000000) !== 0;
    const flags = second >>> 24;
    const length = second & 0xffffff;
    if (control) {
      const version = (first >>> 16) & 0x7fff;
      if (version !== SPDY_VERSION) throw new SpdyProtocolError(`the peer speaks SPDY version ${version}, not ${SPDY_VERSION}`);
      const type = first & 0xffff;
      if (type === 0) throw new SpdyProtocolError('a SPDY control frame of type 0');
      const size = CONTROL_BODY_BYTES.get(type);
      if (size !== undefined && (size.exact ? length !== size.bytes : length < size.bytes)) {
        throw new SpdyProtocolError(`a SPDY control frame of type ${type} with ${length} bytes, not ${size.exact ? '' : 'at least '}${size.bytes}`);
      }
      // Each SETTINGS entry is 8 bytes, after their 4-byte count.
      if (type === SETTINGS && (length - 4) % 8 !== 0) throw new SpdyProtocolError(`a SPDY SETTINGS frame of ${length} bytes`);
      this.#type = type;
      this.#controlParts = [];
    } else {
      const streamId = first & 0x7fffffff;
      // Stream 0 is no stream (section 2.2.2).
      if (streamId === 0) throw new SpdyProtocolError('a SPDY data frame on stream 0');
      this.#streamId = streamId;
    }
    this.#control = control;
    this.#flags = flags;
    this.#remaining = length;
    this.#inFrame = true;
  }

  #endFrame(lastPiece: Buffer): void {
    this.#inFrame = false;
    if (this.#control) {
      this.#controlParts.push(lastPiece);
      const body = this.#controlParts.length === 1 ? lastPiece : Buffer.concat(this.#controlParts);
      this.#controlParts = [];
      this.#handlers.control(this.#type, this.#flags, body);
    } else {
      this.#handlers.data(this.#streamId, lastPiece, (this.#flags & FLAG_FIN) !== 0);
    }
  }
}
