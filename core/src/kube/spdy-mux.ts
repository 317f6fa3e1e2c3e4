/**
 * Many port-forward streams over one SPDY connection to a pod, as kubectl forwards: each stream
 * is a pair of SPDY streams (error, then data) opened with the same `requestid` and the pod's
 * `port` in their headers. Opening a pair costs one SYN_STREAM each on a connection that is
 * already up, where a new connection costs a TLS handshake, an upgrade and a kubelet round trip.
 *
 * Flow control: SPDY/3.1 has per-stream windows (WINDOW_UPDATE), but the kubelet's SPDY library
 * (moby/spdystream) neither sends nor honours them, so a reader that is full cannot slow down its
 * own stream alone. A stream whose reader is full keeps taking bytes, up to
 * `STREAM_BUFFER_BYTES`; only a stream past that pauses the connection's socket (all its
 * streams), until that reader takes bytes again. A slow reader thus holds up the others only once
 * it is that far behind.
 *
 * A stream's end, RST_STREAM or error ends that stream alone; the connection's end (or GOAWAY)
 * ends all of them, a broken connection fails all of them with its error.
 */
import { Duplex } from 'node:stream';
import { TpError } from '../errors.js';
import type { WsConnection } from './ws-client.js';
import { controlFrame, dataFrameHeader, FLAG_FIN, FrameReader, GOAWAY, HeaderBlockEncoder, MAX_FRAME_PAYLOAD, PING, RST_STREAM, synStreamFrame } from './spdy.js';

/** Bytes a stream whose reader is full may hold before the connection's socket is paused. */
export const STREAM_BUFFER_BYTES = 1024 * 1024;
/** Bytes queued for the API server above which a write waits for them to drain. */
const WRITE_WINDOW_BYTES = 1024 * 1024;
/** RST_STREAM's status for a stream we no longer want (SPDY/3 section 2.4.2). */
const CANCEL = 5;
/** Client stream ids are odd and 31 bits; past this a connection opens no more. */
const LAST_STREAM_ID = 0x7fffffff;

export interface SpdyConnectionOptions {
  /** Names the connection in errors: `port-forward to <namespace>/<pod>`. */
  readonly what: string;
  /** How long a connection without streams stays open. */
  readonly idleCloseMs: number;
  /** Called once when the connection takes no more streams (closed, broken, going away or idle). */
  readonly onRetired: () => void;
}

/** One WebSocket carrying SPDY to a pod, and the streams open on it. */
export class SpdyConnection {
  readonly #ws: WsConnection;
  readonly #options: SpdyConnectionOptions;
  readonly #reader: FrameReader;
  readonly #headers = new HeaderBlockEncoder();
  /** Open streams by the id of their data stream; their error streams are one id lower. */
  readonly #streams = new Map<number, MuxStream>();
  /** Streams past STREAM_BUFFER_BYTES: the socket stays paused while there is one. */
  readonly #blocking = new Set<MuxStream>();
  #nextId = 1;
  /** Reading starts with the first stream: frames that came with the upgrade may be for it. */
  #started = false;
  #nextRequestId = 0;
  #retired = false;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(ws: WsConnection, options: SpdyConnectionOptions) {
    this.#ws = ws;
    this.#options = options;
    this.#reader = new FrameReader({
      data: (id, payload, fin) => this.#data(id, payload, fin),
      control: (type, flags, body) => this.#control(type, flags, body),
    });
    ws.on('data', (piece: Buffer) => {
      try {
        this.#reader.push(piece);
      } catch (err: unknown) {
        this.#failAll(err as Error);
        ws.terminate();
      }
    });
    ws.on('close', () => {
      let cut: Error | undefined;
      try {
        // A SPDY frame cut by the end of the tunnel is lost data, not a clean end.
        this.#reader.end();
      } catch (err: unknown) {
        cut = err as Error;
      }
      this.#retire();
      for (const s of [...this.#streams.values()]) {
        if (cut !== undefined) s.fail(cut.message);
        else s.peerEnded();
      }
    });
    ws.on('error', (err: Error) => this.#failAll(err));
  }

  /** Whether a new stream may be opened here. */
  get usable(): boolean {
    return !this.#retired && this.#ws.isOpen && this.#nextId + 2 < LAST_STREAM_ID;
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /** Opens a stream pair to `port`: the error stream (closed on our side at once), then the data stream. */
  openStream(port: number): Duplex {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const errorId = this.#nextId;
    const dataId = errorId + 2;
    this.#nextId += 4;
    const common = [
      ['port', String(port)],
      ['requestid', String(this.#nextRequestId++)],
    ] as const;
    const stream = new MuxStream(this, dataId, `${this.#options.what}:${port}`);
    this.#streams.set(dataId, stream);
    this.#ws.send(
      Buffer.concat([
        synStreamFrame(errorId, this.#headers.encode([['streamtype', 'error'], ...common])),
        dataFrameHeader(errorId, 0, FLAG_FIN),
        synStreamFrame(dataId, this.#headers.encode([['streamtype', 'data'], ...common])),
      ]),
    );
    if (!this.#started) {
      this.#started = true;
      this.#ws.start();
    }
    if (!this.usable) this.#retire();
    return stream;
  }

  // --- for MuxStream ---------------------------------------------------------------------------

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** Sends `chunks` on `dataId` (a frame per chunk where they do not fit one); `callback` once written, or at once while the queue is short. */
  sendData(dataId: number, chunks: readonly Buffer[], callback: (error?: Error | null) => void): void {
    let called = false;
    const done = (err?: Error | null): void => {
      if (!called) {
        called = true;
        callback(err);
      }
    };
    const size = chunks.reduce((n, c) => n + c.length, 0);
    if (size > MAX_FRAME_PAYLOAD) {
      // Rare (a huge writev): one frame per chunk, each cut to what a frame holds.
      const pieces = chunks.flatMap((c) => Array.from({ length: Math.ceil(c.length / MAX_FRAME_PAYLOAD) }, (_, i) => c.subarray(i * MAX_FRAME_PAYLOAD, (i + 1) * MAX_FRAME_PAYLOAD)));
      const last = pieces.pop() ?? Buffer.alloc(0);
      for (const p of pieces) this.#ws.send([dataFrameHeader(dataId, p.length), p]);
      this.#ws.send([dataFrameHeader(dataId, last.length), last], (err) => done(err));
    } else {
      this.#ws.send([dataFrameHeader(dataId, size), ...chunks], (err) => done(err));
    }
    if (this.#ws.bufferedAmount < WRITE_WINDOW_BYTES) done();
  }

  /** The stream is done with on our side: FIN on its data stream when `fin`, then both ids reset. */
  closeStream(stream: MuxStream, fin: boolean): void {
    const dataId = stream.dataId;
    if (this.#streams.get(dataId) !== stream) return;
    this.#streams.delete(dataId);
    this.#unblock(stream);
    if (this.#ws.isOpen) {
      const frames: Buffer[] = [];
      if (fin) frames.push(dataFrameHeader(dataId, 0, FLAG_FIN));
      frames.push(rstStream(dataId - 2), rstStream(dataId));
      this.#ws.send(Buffer.concat(frames));
    }
    this.#armIdle();
  }

  /** `stream`'s reader is past its allowance: no more bytes from the socket until it reads. */
  block(stream: MuxStream): void {
    this.#blocking.add(stream);
    this.#ws.pause();
  }

  /** `stream`'s reader wants bytes again. */
  unblock(stream: MuxStream): void {
    this.#unblock(stream);
  }

  // ---------------------------------------------------------------------------------------------

  #unblock(stream: MuxStream): void {
    if (this.#blocking.delete(stream) && this.#blocking.size === 0) this.#ws.resume();
  }

  #data(id: number, payload: Buffer, fin: boolean): void {
    const data = this.#streams.get(id);
    if (data !== undefined) {
      data.receive(payload, fin);
      return;
    }
    const owner = this.#streams.get(id + 2);
    if (owner !== undefined) owner.receiveError(payload, fin);
    // Anything else is for a stream we are done with.
  }

  #control(type: number, flags: number, body: Buffer): void {
    if (type === PING) {
      this.#ws.send(controlFrame(PING, flags, body));
    } else if (type === RST_STREAM) {
      // A reset of a data stream ends that stream; of an error stream, nothing we wait for.
      this.#streams.get(body.readUInt32BE(0) & 0x7fffffff)?.fail(`the port-forward stream was reset (SPDY status ${body.readUInt32BE(4)})`);
    } else if (type === GOAWAY) {
      // The peer takes no new streams; the ones open end as the pod's side had ended.
      this.#retire();
      for (const s of [...this.#streams.values()]) s.peerEnded();
    }
    // SYN_STREAM (the peer opens none that we want), SYN_REPLY, SETTINGS, WINDOW_UPDATE,
    // HEADERS: nothing a port-forward needs from them.
  }

  #failAll(err: Error): void {
    this.#retire();
    for (const s of [...this.#streams.values()]) s.destroy(new TpError('cluster', 'port-forward-failed', `${s.what}: ${err.message}`, { cause: err }));
  }

  #armIdle(): void {
    if (this.#streams.size > 0 || this.#idleTimer !== undefined) return;
    if (this.#retired) {
      this.#ws.close(1000);
      return;
    }
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#streams.size > 0) return;
      this.#retire();
      this.#ws.close(1000);
    }, this.#options.idleCloseMs);
    this.#idleTimer.unref();
  }

  #retire(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#retired) return;
    this.#retired = true;
    this.#options.onRetired();
  }
}

function rstStream(id: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(id, 0);
  body.writeUInt32BE(CANCEL, 4);
  return controlFrame(RST_STREAM, 0, body);
}

/** One forwarded connection: a pair of SPDY streams on a shared connection, as a Duplex. */
class MuxStream extends Duplex {
  readonly #conn: SpdyConnection;
  readonly dataId: number;
  readonly what: string;
  #error = '';
  /** The data stream ended (its FIN, a GOAWAY or the connection's end): more is not heard. */
  #ended = false;

  constructor(conn: SpdyConnection, dataId: number, what: string) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    this.dataId = dataId;
    this.what = what;
  }

  receive(payload: Buffer, fin: boolean): void {
    if (this.#ended) return;
    if (payload.length > 0 && !this.push(payload) && this.readableLength > STREAM_BUFFER_BYTES) this.#conn.block(this);
    // The pod's side ended; a failed dial inside the pod is reported on the error stream first.
    if (fin) this.peerEnded();
  }

  receiveError(payload: Buffer, fin: boolean): void {
    this.#error += payload.toString('utf8');
    if (fin && this.#error !== '') this.fail('');
  }

  /** The pod's side ended (or the connection did, cleanly). */
  peerEnded(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#error !== '') this.fail('');
    else this.push(null);
  }

  /** Fails this stream with what the error stream said, else with `reason`. */
  fail(reason: string): void {
    this.#error ||= reason;
    this.destroy(new TpError('cluster', 'port-forward-failed', `${this.what}: ${this.#error.trim()}`));
  }

  override _read(): void {
    this.#conn.unblock(this);
  }

  /** Bytes written that may still be referred to rather than sent (`pendingWriteBytes` in reused-reads.ts). */
  get pendingWriteBytes(): number {
    return this.writableLength + this.#conn.bufferedAmount;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#conn.sendData(this.dataId, [chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#conn.sendData(
      this.dataId,
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    // As a stream of its own connection: the end of our data is the end of the stream.
    this.#conn.closeStream(this, true);
    if (!this.#ended) {
      this.#ended = true;
      this.push(null);
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#ended = true;
    this.#conn.closeStream(this, false);
    callback(error);
  }
}
