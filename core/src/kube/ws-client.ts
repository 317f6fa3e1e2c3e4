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
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

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

export class WsConnection extends EventEmitter<WsConnectionEvents> {
  readonly protocol: string;
  readonly #socket: Socket;
  readonly #header = Buffer.alloc(14);
  #headerHave = 0;
  #headerNeed = 2;
  #inFrame = false;
  #opcode = 0;
  #remaining = 0;
  #messageStart = true;
  #controlParts: Buffer[] = [];
  #closeSent = false;
  #closed = false;

  readonly #head: Buffer;

  constructor(socket: Socket, protocol: string, head: Buffer) {
    super();
    this.#socket = socket;
    this.protocol = protocol;
    this.#head = head;
  }

  /**
   * Starts reading, once the owner listens: bytes that came with the upgrade response are the
   * first frames, and the socket holds the rest until then.
   */
  start(): void {
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (err: Error) => this.emit('error', err));
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

  /** Drops the connection at once. */
  terminate(): void {
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
    let rest = chunk;
    while (!this.#closed) {
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

  /** Whether the header is complete (false: more of it is needed, #headerNeed grew). */
  #parseHeader(): boolean {
    const h = this.#header;
    const masked = (h[1]! & 0x80) !== 0;
    const len7 = h[1]! & 0x7f;
    const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    if (this.#headerHave < need) {
      this.#headerNeed = need;
      return false;
    }
    if (masked) {
      this.#fail(new Error('the server sent a masked WebSocket frame'));
      return false;
    }
    const length = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? h.readUInt32BE(2) * 0x100000000 + h.readUInt32BE(6) : len7;
    const opcode = h[0]! & 0x0f;
    this.#headerHave = 0;
    this.#headerNeed = 2;
    if (opcode >= OP_CLOSE) {
      if (length > MAX_CONTROL_PAYLOAD) {
        this.#fail(new Error(`a WebSocket control frame of ${length} bytes`));
        return false;
      }
      this.#controlParts = [];
    } else if (opcode !== OP_CONTINUATION) {
      if (opcode !== OP_BINARY && opcode !== OP_TEXT) {
        this.#fail(new Error(`an unknown WebSocket opcode ${opcode}`));
        return false;
      }
      this.#messageStart = true;
    }
    this.#opcode = opcode;
    // FIN matters to nobody here: pieces flow as they come, and `start` marks each new message.
    this.#remaining = length;
    this.#inFrame = true;
    return true;
  }

  #piece(piece: Buffer): void {
    if (this.#opcode >= OP_CLOSE) {
      this.#controlParts.push(piece);
      return;
    }
    if (piece.length === 0) return;
    const start = this.#messageStart;
    this.#messageStart = false;
    this.emit('data', piece, start);
  }

  #endFrame(last: Buffer): void {
    this.#inFrame = false;
    if (this.#opcode < OP_CLOSE) {
      this.#piece(last);
      return;
    }
    const body = Buffer.concat([...this.#controlParts, last]);
    this.#controlParts = [];
    if (this.#opcode === OP_PING) this.#sendFrame(OP_PONG, [body]);
    else if (this.#opcode === OP_CLOSE) {
      // Answer with the same code and leave: the server closes the TCP connection.
      if (!this.#closeSent) {
        this.#sendFrame(OP_CLOSE, [body.subarray(0, 2)]);
        this.#closeSent = true;
        this.#socket.end();
      }
    }
  }

  #fail(err: Error): void {
    this.emit('error', err);
    this.#socket.destroy();
  }

  #gone(): void {
    if (this.#closed) return;
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
