/**
 * The stream that carries a wiretap's copies: one per wiretap and agent, for as long as both last,
 * whatever number of connections it copies. Opening a tunnel per copied connection (a port-forward
 * stream, or a relayed pair, each crossing the API server) would cost the node's CPU on every
 * connection the app accepts; a frame costs nine bytes.
 *
 * Frames, both ways: a 4-byte big-endian connection number (chosen by the agent, never reused on
 * the stream), a 1-byte kind, a 4-byte big-endian length, then that many bytes.
 * - Agent to workstation: `data` (the caller's bytes; the first opens the connection to the local
 *   port), `end` (the caller is done: half-close), `abort` (the copy was given up: drop it).
 * - Workstation to agent: `done` (the local connection closed after its end), `failed` (it could
 *   not be made or broke; the payload says why, in UTF-8). Nothing the local process answers is
 *   sent back: a wiretap's answers are discarded where they are made.
 * Either side ending the stream ends every connection on it.
 */

export const COPY_KIND = { data: 0, end: 1, abort: 2, done: 3, failed: 4 } as const;
export type CopyKind = (typeof COPY_KIND)[keyof typeof COPY_KIND];

export const COPY_HEADER_BYTES = 9;
/** A frame's payload is at most this; longer pieces are split. */
export const COPY_MAX_PAYLOAD = 64 * 1024;

export interface CopyFrame {
  readonly connection: number;
  readonly kind: CopyKind;
  readonly payload: Buffer;
}

/** The frames of one piece (split at COPY_MAX_PAYLOAD), as one buffer. */
export function encodeCopyFrame(connection: number, kind: CopyKind, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const count = Math.max(1, Math.ceil(payload.length / COPY_MAX_PAYLOAD));
  const out = Buffer.allocUnsafe(payload.length + count * COPY_HEADER_BYTES);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const part = payload.subarray(i * COPY_MAX_PAYLOAD, Math.min(payload.length, (i + 1) * COPY_MAX_PAYLOAD));
    out.writeUInt32BE(connection >>> 0, at);
    out.writeUInt8(kind, at + 4);
    out.writeUInt32BE(part.length, at + 5);
    out.set(part, at + COPY_HEADER_BYTES);
    at += COPY_HEADER_BYTES + part.length;
  }
  return out;
}

/** Reads frames out of a byte stream, whatever its pieces' boundaries. */
export class CopyFrameReader {
  #pending: Buffer = Buffer.alloc(0);

  /** The whole frames `piece` completes; throws on a kind no side sends or an oversized length. */
  push(piece: Uint8Array): CopyFrame[] {
    this.#pending = this.#pending.length === 0 ? Buffer.from(piece) : Buffer.concat([this.#pending, piece]);
    const frames: CopyFrame[] = [];
    let at = 0;
    while (this.#pending.length - at >= COPY_HEADER_BYTES) {
      const connection = this.#pending.readUInt32BE(at);
      const kind = this.#pending.readUInt8(at + 4);
      const length = this.#pending.readUInt32BE(at + 5);
      if (kind > COPY_KIND.failed) throw new Error(`copy stream: unknown frame kind ${kind}`);
      if (length > COPY_MAX_PAYLOAD) throw new Error(`copy stream: a frame of ${length} bytes, more than ${COPY_MAX_PAYLOAD}`);
      if (this.#pending.length - at - COPY_HEADER_BYTES < length) break;
      const start = at + COPY_HEADER_BYTES;
      frames.push({ connection, kind: kind as CopyKind, payload: Buffer.from(this.#pending.subarray(start, start + length)) });
      at = start + length;
    }
    this.#pending = this.#pending.subarray(at);
    return frames;
  }
}
