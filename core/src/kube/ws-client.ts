/**
 * A WebSocket client (RFC 6455) made for bulk binary streams to the API server, where the `ws`
 * package falls short twice: it refuses subprotocol names with a `/` (Kubernetes' SPDY tunnel is
 * `SPDY/3.1+portforward.k8s.io`), and it gathers every message whole before handing it over.
 *
 * - Received payloads are handed on piece by piece as they arrive, without copying; `start`
 *   marks the first piece of a message (protocols that put something at each message's head
 *   need it).
 * - Sent frames carry an all-zero mask, which leaves their bytes as they are: masking guards
 *   browsers' proxies against crafted bytes, and costs a pass over every byte in JavaScript.
 * - Pings are answered; a close frame from the server ends the connection. Backpressure is the
 *   socket's: `pause()`/`resume()` and `bufferedAmount`.
 * - A server that breaks the protocol (a masked frame, reserved bits or opcodes, a length that is
 *   not minimal or too large, a long or fragmented control frame, text that is not UTF-8) or that
 *   goes away in the middle of a frame fails the connection: one 'error', then 'close', and
 *   nothing more is read (RFC 6455 7.1.7: "fail the WebSocket connection").
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { TextDecoder } from 'node:util';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** Control frames carry at most 125 bytes; anything longer is not a server we understand. */
const MAX_CONTROL_PAYLOAD = 125;

export interface WsConnectOptions {
  /** TLS material and headers (Authorization), as `KubeConfig.applyToHTTPSOptions` fills them. */
  readonly requestOptions: https.RequestOptions;
  readonly protocols: readonly string[];
  readonly timeoutMs: number;
}

/** The upgrade was answered with something else: the status and the body (a Kubernetes Status). */
export class WsRefusedError extends Error {
  override readonly name = 'WsRefusedError';
  constructor(
    readonly statusCode: number,
    readonly body: string,
  ) {
    super(`${statusCode} ${body}`);
  }
}

export interface WsConnectionEvents {
  /** A piece of a data message's payload; `start` on the first piece of each message. */
  data: [piece: Buffer, start: boolean];
  /** The connection is gone (closed by either side, or broken); once, after any 'error'. */
  close: [];
  error: [err: Error];
}

/** The peer broke the protocol: the connection is failed with `closeCode` (RFC 6455 7.4.1). */
export class WsProtocolError extends Error {
  override readonly name = 'WsProtocolError';
  constructor(
    message: string,
    readonly closeCode = 1002,
  ) {
    super(message);
  }
}

export interface WsFrameHandlers {
  /** A piece of a data message's payload; `start` on the first piece of each message. */
  data(piece: Buffer, start: boolean): void;
  /** A whole control frame: close, ping or pong, and its body. */
  control(opcode: number, body: Buffer): void;
}

/**
 * Reads the frames a server sends from a byte stream cut anywhere. Payloads are handed on as they
 * arrive, without copying; control frames (125 bytes at most) are gathered.
 *
 * Anything a server must not send fails the reader: `push` throws a `WsProtocolError` once, and
 * from then on the reader ignores what it is given (the caller drops the connection, but the
 * chunk in hand may hold more frames). After a close frame nothing more is read either.
 */
export class WsFrameReader {
  readonly #handlers: WsFrameHandlers;
  readonly #header = Buffer.alloc(10);
  #headerHave = 0;
  #headerNeed = 2;
  #inFrame = false;
  #opcode = 0;
  #fin = false;
  #remaining = 0;
  /** A data message whose final frame has not come yet (its opcode), or 0. */
  #message = 0;
  #messageStart = true;
  /** Text messages are checked as UTF-8 (RFC 6455 8.1) as they pass. */
  #utf8: TextDecoder | undefined;
  #controlParts: Buffer[] = [];
  #stopped = false;

  constructor(handlers: WsFrameHandlers) {
    this.#handlers = handlers;
  }

  /** The reader failed or read a close frame: it takes nothing more. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Reads `chunk`; throws a `WsProtocolError` on the first malformed frame, then reads no more. */
  push(chunk: Buffer): void {
    if (this.#stopped) return;
    try {
      this.#read(chunk);
    } catch (err: unknown) {
      this.#stopped = true;
      throw err;
    }
  }

  /**
   * The byte stream ended: throws when it ended inside a frame or a fragmented message (the peer
   * went away in the middle of something, which is not a clean end).
   */
  end(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#inFrame || this.#headerHave > 0) throw new WsProtocolError('the connection ended inside a WebSocket frame', 1006);
    if (this.#message !== 0) throw new WsProtocolError('the connection ended inside a fragmented WebSocket message', 1006);
  }

  #read(chunk: Buffer): void {
    let rest = chunk;
    while (!this.#stopped) {
      if (!this.#inFrame) {
        if (rest.length === 0) return;
        const take = Math.min(this.#headerNeed - this.#headerHave, rest.length);
        rest.copy(this.#header, this.#headerHave, 0, take);
        this.#headerHave += take;
        rest = rest.subarray(take);
        if (this.#headerHave < this.#headerNeed) return;
        if (!this.#parseHeader()) continue;
      }
      if (this.#remaining === 0) {
        this.#endFrame(Buffer.alloc(0));
        continue;
      }
      if (rest.length === 0) return;
      const take = Math.min(this.#remaining, rest.length);
      const piece = rest.subarray(0, take);
      rest = rest.subarray(take);
      this.#remaining -= take;
      if (this.#remaining > 0) this.#piece(piece);
      else this.#endFrame(piece);
    }
  }

  /** Whether the header is complete (false: more of it is needed, #headerNeed grew); throws on a bad one. */
  #parseHeader(): boolean {
    const h = this.#header;
    const b0 = h[0]!;
    const b1 = h[1]!;
    if (this.#headerNeed === 2) {
      // Checks that need only the first two bytes come first: a bad frame fails at once.
      if ((b1 & 0x80) !== 0) throw new WsProtocolError('the server sent a masked WebSocket frame');
      // No extension was negotiated, so RSV1-3 must be clear (RFC 6455 5.2).
      if ((b0 & 0x70) !== 0) throw new WsProtocolError(`a WebSocket frame with reserved bits set (0x${(b0 & 0x70).toString(16)})`);
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      const len7 = b1 & 0x7f;
      if (opcode >= OP_CLOSE) {
        if (opcode > OP_PONG) throw new WsProtocolError(`a WebSocket frame with the reserved opcode ${opcode}`);
        if (!fin) throw new WsProtocolError('a fragmented WebSocket control frame');
        if (len7 > MAX_CONTROL_PAYLOAD) throw new WsProtocolError('a WebSocket control frame over 125 bytes');
      } else if (opcode === OP_CONTINUATION) {
        if (this.#message === 0) throw new WsProtocolError('a WebSocket continuation frame with no message to continue');
      } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
        if (this.#message !== 0) throw new WsProtocolError('a new WebSocket message inside a fragmented one');
      } else {
        throw new WsProtocolError(`a WebSocket frame with the reserved opcode ${opcode}`);
      }
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
      if (need > 2) {
        this.#headerNeed = need;
        return false;
      }
    }
    const len7 = b1 & 0x7f;
    let length = len7;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      // The shortest form must be used (RFC 6455 5.2).
      if (length < 126) throw new WsProtocolError(`a WebSocket frame length of ${length} in 16 bits`);
    } else if (len7 === 127) {
      const high = h.readUInt32BE(2);
      if (high >= 0x80000000) throw new WsProtocolError('a WebSocket frame length with its most significant bit set');
      // Past 2^53 a length is no longer an exact JavaScript number; no server sends 8 PiB.
      if (high > 0x1fffff) throw new WsProtocolError('a WebSocket frame longer than 2^53 bytes');
      length = high * 0x100000000 + h.readUInt32BE(6);
      if (length < 0x10000) throw new WsProtocolError(`a WebSocket frame length of ${length} in 64 bits`);
    }
    const opcode = b0 & 0x0f;
    this.#headerHave = 0;
    this.#headerNeed = 2;
    this.#opcode = opcode;
    this.#fin = (b0 & 0x80) !== 0;
    if (opcode >= OP_CLOSE) {
      this.#controlParts = [];
    } else if (opcode !== OP_CONTINUATION) {
      this.#message = opcode;
      this.#messageStart = true;
      this.#utf8 = opcode === OP_TEXT ? new TextDecoder('utf-8', { fatal: true }) : undefined;
    }
    this.#remaining = length;
    this.#inFrame = true;
    return true;
  }

  #piece(piece: Buffer): void {
    if (this.#opcode >= OP_CLOSE) {
      this.#controlParts.push(piece);
      return;
    }
    if (this.#utf8 !== undefined) this.#checkText(piece, true);
    if (piece.length === 0) return;
    const start = this.#messageStart;
    this.#messageStart = false;
    this.#handlers.data(piece, start);
  }

  #checkText(piece: Buffer, more: boolean): void {
    try {
      this.#utf8!.decode(piece, { stream: more });
    } catch {
      throw new WsProtocolError('a WebSocket text message that is not UTF-8', 1007);
    }
  }

  #endFrame(last: Buffer): void {
    this.#inFrame = false;
    if (this.#opcode < OP_CLOSE) {
      this.#piece(last);
      if (this.#fin) {
        if (this.#utf8 !== undefined) this.#checkText(Buffer.alloc(0), false);
        this.#utf8 = undefined;
        this.#message = 0;
      }
      return;
    }
    const body = this.#controlParts.length === 0 ? last : Buffer.concat([...this.#controlParts, last]);
    this.#controlParts = [];
    if (this.#opcode === OP_CLOSE) {
      // A close body is empty or a 2-byte code and a UTF-8 reason (RFC 6455 5.5.1).
      if (body.length === 1) throw new WsProtocolError('a WebSocket close frame of 1 byte');
      if (body.length > 2) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(2));
        } catch {
          throw new WsProtocolError('a WebSocket close reason that is not UTF-8', 1007);
        }
      }
      // The closing handshake: whatever follows a close frame is not read (RFC 6455 5.5.1).
      this.#stopped = true;
    }
    this.#handlers.control(this.#opcode, body);
  }
}

export class WsConnection extends EventEmitter<WsConnectionEvents> {
  readonly protocol: string;
  readonly #socket: Socket;
  readonly #reader: WsFrameReader;
  #closeSent = false;
  #closed = false;
  /** An 'error' was emitted: there is only ever one. */
  #failed = false;
  /** The owner dropped the connection: what still arrives is not read. */
  #terminated = false;

  readonly #head: Buffer;

  constructor(socket: Socket, protocol: string, head: Buffer) {
    super();
    this.#socket = socket;
    this.protocol = protocol;
    this.#head = head;
    this.#reader = new WsFrameReader({
      data: (piece, start) => this.emit('data', piece, start),
      control: (opcode, body) => this.#control(opcode, body),
    });
  }

  /**
   * Starts reading, once the owner listens: bytes that came with the upgrade response are the
   * first frames, and the socket holds the rest until then.
   */
  start(): void {
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (err: Error) => this.#fail(err));
    socket.on('close', () => this.#gone());
    if (this.#head.length > 0) this.#receive(this.#head);
    if (socket.destroyed) this.#gone();
  }

  /** Bytes written but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  get isOpen(): boolean {
    return !this.#closed && !this.#closeSent;
  }

  /**
   * Sends one binary message, given whole or in parts (a header and the bytes behind it, which
   * then go out as they are, uncopied); `callback` once its bytes are written (or failed).
   */
  send(payload: Buffer | readonly Buffer[], callback?: (err?: Error | null) => void): void {
    this.#sendFrame(OP_BINARY, Buffer.isBuffer(payload) ? [payload] : payload, callback);
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    if (!this.#closed) this.#socket.resume();
  }

  /** A clean close: a close frame with `code`, then the end of our side of the socket. */
  close(code = 1000): void {
    if (this.#closeSent || this.#closed) return;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code, 0);
    this.#sendFrame(OP_CLOSE, [body]);
    this.#closeSent = true;
    this.#socket.end();
  }

  /** Drops the connection at once; nothing more is read, not even the rest of a chunk in hand. */
  terminate(): void {
    this.#terminated = true;
    this.#socket.destroy();
  }

  #sendFrame(opcode: number, parts: readonly Buffer[], callback?: (err?: Error | null) => void): void {
    if (this.#closeSent || this.#closed) {
      if (callback !== undefined) process.nextTick(callback, new Error('the WebSocket is closed'));
      return;
    }
    let n = 0;
    for (const part of parts) n += part.length;
    // FIN and the opcode; the mask bit with the length (7 bits, or 126/127 and 2/8 more bytes);
    // then the mask, all zero.
    const extra = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
    const head = Buffer.alloc(2 + extra + 4);
    head[0] = 0x80 | opcode;
    if (extra === 0) head[1] = 0x80 | n;
    else if (extra === 2) {
      head[1] = 0x80 | 126;
      head.writeUInt16BE(n, 2);
    } else {
      head[1] = 0x80 | 127;
      head.writeUInt32BE(Math.floor(n / 0x100000000), 2);
      head.writeUInt32BE(n >>> 0, 6);
    }
    const socket = this.#socket;
    socket.cork();
    socket.write(head);
    const last = parts.length - 1;
    parts.forEach((part, i) => {
      if (i < last) socket.write(part);
    });
    if (n > 0 || callback !== undefined) socket.write(parts[last] ?? Buffer.alloc(0), callback);
    socket.uncork();
  }

  #receive(chunk: Buffer): void {
    if (this.#terminated || this.#failed) return;
    try {
      this.#reader.push(chunk);
    } catch (err: unknown) {
      if (err instanceof WsProtocolError) this.#fail(err);
      else throw err;
    }
  }

  #control(opcode: number, body: Buffer): void {
    if (this.#terminated) return;
    if (opcode === OP_PING) this.#sendFrame(OP_PONG, [body]);
    else if (opcode === OP_CLOSE && !this.#closeSent) {
      // Answer with the same code and leave: the server closes the TCP connection.
      this.#sendFrame(OP_CLOSE, [body.subarray(0, 2)]);
      this.#closeSent = true;
      this.#socket.end();
    }
  }

  /** Fails the connection: one 'error', the socket dropped, then 'close' (from the socket's). */
  #fail(err: Error): void {
    if (this.#failed || this.#closed) return;
    this.#failed = true;
    this.emit('error', err);
    this.#socket.destroy();
  }

  #gone(): void {
    if (this.#closed) return;
    if (!this.#terminated && !this.#failed) {
      try {
        this.#reader.end();
      } catch (err: unknown) {
        this.#fail(err as Error);
      }
    }
    this.#closed = true;
    this.emit('close');
  }
}

/** Opens a WebSocket to `url` (ws: or wss:), offering `protocols`; the server must pick one. */
export function connectWebSocket(url: URL, options: WsConnectOptions): Promise<WsConnection> {
  const key = randomBytes(16).toString('base64');
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  const request = (secure ? https : http).request({
    // A connection of its own (an upgraded socket never goes back to a pool), unless the
    // kubeconfig's settings bring an agent (a proxy).
    agent: false,
    ...options.requestOptions,
    protocol: secure ? 'https:' : 'http:',
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    path: `${url.pathname}${url.search}`,
    method: 'GET',
    headers: {
      ...(options.requestOptions.headers as Record<string, string> | undefined),
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Protocol': options.protocols.join(', '),
    },
    timeout: options.timeoutMs,
  });
  return new Promise((resolve, reject) => {
    request.on('timeout', () => request.destroy(new Error(`no WebSocket upgrade within ${options.timeoutMs / 1000} s`)));
    request.on('error', reject);
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => reject(new WsRefusedError(res.statusCode ?? 0, body)));
      res.on('error', reject);
    });
    request.on('upgrade', (res, socket, head) => {
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      const protocol = String(res.headers['sec-websocket-protocol'] ?? '').trim();
      let problem = '';
      if (res.headers['sec-websocket-accept'] !== accept) problem = 'the server answered the WebSocket key wrongly';
      else if (!options.protocols.includes(protocol)) problem = `the server chose the subprotocol "${protocol}", none of ${options.protocols.join(', ')}`;
      if (problem !== '') {
        socket.destroy();
        reject(new Error(problem));
        return;
      }
      socket.setTimeout(0);
      resolve(new WsConnection(socket, protocol, head));
    });
    request.end();
  });
}
