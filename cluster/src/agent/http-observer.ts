/**
 * A passive HTTP/1.x observer: it reads a copy of both directions of one connection, as a tap
 * sees them, and reports each request with its response (method, path, status, headers, the
 * first bytes of the bodies, bytes and timing) once the response has ended.
 *
 * It never touches the connection: it only reads pieces that are valid during the call, copying
 * no more than a head being assembled and the body bytes asked for. Framing follows RFC 9112:
 * Content-Length, chunked (with trailers), or, for a response, until the connection closes;
 * HEAD, 204 and 304 responses have no body; 1xx responses other than 101 are skipped; pipelined
 * requests are matched with their responses in order. After a 101 (an upgrade) or a CONNECT's
 * 2xx the rest is not HTTP and parsing stops. On anything it cannot parse (a head past
 * MAX_OBSERVED_HEAD_BYTES, a malformed line, a response nobody asked for) it gives up quietly:
 * the connection is then reported as a connection only.
 */

/** The largest request or response head it assembles; a longer one makes it give up. */
export const MAX_OBSERVED_HEAD_BYTES = 32 * 1024;
/** The longest chunk-size or trailer line. */
const MAX_LINE_BYTES = 4096;

export interface ObservedHeader {
  readonly name: string;
  readonly value: string;
}

/** One request and its response, as observed. */
export interface ObservedExchange {
  /** Its place on the connection: 0 for the first request, 1 for the next, ... */
  readonly index: number;
  readonly method: string;
  readonly path: string;
  /** 0 when no response (head) came. */
  readonly status: number;
  readonly requestHeaders: readonly ObservedHeader[];
  readonly responseHeaders: readonly ObservedHeader[];
  readonly requestBody: Buffer;
  readonly responseBody: Buffer;
  /** Unix milliseconds of the request's first byte. */
  readonly startedAt: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Empty, or why the exchange did not complete. */
  readonly error: string;
}

export interface Http1ObserverOptions {
  /** How many bytes of each body to keep; 0: none. */
  readonly bodyBytes: number;
  readonly onExchange: (exchange: ObservedExchange) => void;
  /** Milliseconds (fractional) since the Unix epoch; the real clock by default. */
  readonly now?: () => number;
}

type Framing = { readonly kind: 'none' } | { readonly kind: 'length'; readonly n: number } | { readonly kind: 'chunked' } | { readonly kind: 'close' } | { readonly kind: 'stop' };

/** What a reader tells its observer. `head` returns how the message's body is framed. */
interface ReaderSink {
  begin(): void;
  head(text: string): Framing | undefined;
  body(piece: Uint8Array): void;
  /** The message ended; `bytes` it took in all. */
  end(bytes: number): void;
}

type ReaderState = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailer' | 'close' | 'stopped' | 'failed';

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/** Reads one direction of a connection as a sequence of HTTP/1 messages. */
class MessageReader {
  readonly #sink: ReaderSink;
  #state: ReaderState = 'head';
  #head: Buffer = EMPTY;
  #remaining = 0;
  #line = '';
  /** Bytes of the current message so far; -1 before its first byte. */
  #count = -1;

  constructor(sink: ReaderSink) {
    this.#sink = sink;
  }

  get state(): ReaderState {
    return this.#state;
  }

  /** Bytes of the message under way (a close-delimited body ends with the connection). */
  get count(): number {
    return Math.max(0, this.#count);
  }

  stop(): void {
    this.#state = 'stopped';
  }

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      const state = this.#state;
      if (state === 'stopped' || state === 'failed') return;
      if (this.#count < 0) {
        // Stray CRLFs between messages (after a body, some clients send one) belong to none.
        if (chunk[i] === 0x0d || chunk[i] === 0x0a) {
          i++;
          continue;
        }
        this.#count = 0;
        this.#sink.begin();
      }
      const start = i;
      switch (state) {
        case 'head':
          i = this.#readHead(chunk, i);
          break;
        case 'length':
        case 'chunk-data': {
          const n = Math.min(this.#remaining, chunk.length - i);
          this.#sink.body(chunk.subarray(i, i + n));
          i += n;
          this.#count += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            if (state === 'length') this.#end();
            else this.#state = 'chunk-crlf';
          }
          break;
        }
        case 'close':
          this.#sink.body(chunk.subarray(i));
          this.#count += chunk.length - i;
          i = chunk.length;
          break;
        case 'chunk-size':
        case 'chunk-crlf':
        case 'trailer':
          i = this.#readLine(chunk, i);
          break;
      }
      if (i === start && this.#state === state) return; // no progress: defensive, never loop
    }
  }

  #fail(): number {
    this.#state = 'failed';
    return Number.MAX_SAFE_INTEGER;
  }

  #readHead(chunk: Uint8Array, i: number): number {
    const prev = this.#head.length;
    const rest = chunk.subarray(i);
    const joined = prev === 0 ? rest : Buffer.concat([this.#head, rest]);
    const at = Buffer.from(joined.buffer, joined.byteOffset, joined.byteLength).indexOf(CRLFCRLF, Math.max(0, prev - 3));
    if (at < 0) {
      if (joined.length > MAX_OBSERVED_HEAD_BYTES) return this.#fail();
      // A copy: the piece is valid only during this call.
      this.#head = prev === 0 ? Buffer.from(rest) : (joined as Buffer);
      this.#count += rest.length;
      return chunk.length;
    }
    const headEnd = at + CRLFCRLF.length;
    if (headEnd > MAX_OBSERVED_HEAD_BYTES) return this.#fail();
    const used = headEnd - prev;
    this.#count += used;
    const text = Buffer.from(joined.buffer, joined.byteOffset, headEnd).toString('latin1');
    this.#head = EMPTY;
    const framing = this.#sink.head(text);
    if (framing === undefined) return this.#fail();
    switch (framing.kind) {
      case 'none':
        this.#end();
        break;
      case 'length':
        if (framing.n === 0) this.#end();
        else {
          this.#remaining = framing.n;
          this.#state = 'length';
        }
        break;
      case 'chunked':
        this.#line = '';
        this.#state = 'chunk-size';
        break;
      case 'close':
        this.#state = 'close';
        break;
      case 'stop':
        this.#state = 'stopped';
        break;
    }
    return i + used;
  }

  /** Reads a CRLF-terminated line of the chunked framing; acts on it when whole. */
  #readLine(chunk: Uint8Array, i: number): number {
    const nl = chunk.indexOf(0x0a, i);
    const end = nl < 0 ? chunk.length : nl + 1;
    this.#line += Buffer.from(chunk.buffer, chunk.byteOffset + i, end - i).toString('latin1');
    this.#count += end - i;
    if (this.#line.length > MAX_LINE_BYTES) return this.#fail();
    if (nl < 0) return end;
    const line = this.#line.replace(/\r?\n$/, '');
    this.#line = '';
    if (this.#state === 'chunk-size') {
      const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
      if (m === null) return this.#fail();
      const size = parseInt(m[1] ?? '', 16);
      if (size === 0) this.#state = 'trailer';
      else {
        this.#remaining = size;
        this.#state = 'chunk-data';
      }
    } else if (this.#state === 'chunk-crlf') {
      if (line !== '') return this.#fail();
      this.#state = 'chunk-size';
    } else if (line === '') {
      this.#end();
    }
    return end;
  }

  #end(): void {
    const bytes = this.#count;
    this.#count = -1;
    this.#state = 'head';
    this.#sink.end(bytes);
  }
}

interface Head {
  readonly first: string;
  readonly headers: ObservedHeader[];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A head's start line and header fields; undefined when malformed. */
function parseHead(text: string): Head | undefined {
  const lines = text.slice(0, -4).split('\r\n');
  const first = lines.shift() ?? '';
  const headers: ObservedHeader[] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // obs-fold: a continuation of the previous field's value.
      const last = headers.pop();
      if (last === undefined) return undefined;
      headers.push({ name: last.name, value: `${last.value} ${line.trim()}` });
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) return undefined;
    headers.push({ name, value: line.slice(colon + 1).trim() });
  }
  return { first, headers };
}

function headerValues(headers: readonly ObservedHeader[], name: string): string[] {
  return headers.filter((h) => h.name.toLowerCase() === name).map((h) => h.value);
}

/** Content-Length or chunked framing of a message with a body; `fallback` when it says neither. */
function bodyFraming(headers: readonly ObservedHeader[], fallback: Framing): Framing | undefined {
  const te = headerValues(headers, 'transfer-encoding');
  if (te.length > 0) {
    const codings = te.join(',').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '');
    if (codings.at(-1) === 'chunked') return { kind: 'chunked' };
    // A request whose length cannot be known cannot be read on (RFC 9112 6.3); a response runs to the close.
    return fallback.kind === 'close' ? fallback : undefined;
  }
  const cl = headerValues(headers, 'content-length');
  if (cl.length > 0) {
    const values = new Set(cl.join(',').split(',').map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) return undefined;
    return { kind: 'length', n: Number(only) };
  }
  return fallback;
}

function asksUpgrade(headers: readonly ObservedHeader[]): boolean {
  return headerValues(headers, 'upgrade').length > 0 && headerValues(headers, 'connection').some((v) => /(^|,)\s*upgrade\s*(,|$)/i.test(v));
}

/** A request on its way: what is known of it until its response ends. */
interface Exchange {
  readonly index: number;
  readonly startedAt: number;
  method: string;
  path: string;
  requestHeaders: ObservedHeader[];
  responseHeaders: ObservedHeader[];
  status: number;
  requestBody: Buffer[];
  requestBodyBytes: number;
  responseBody: Buffer[];
  responseBodyBytes: number;
  bytesIn: number;
  bytesOut: number;
}

/** A body piece, as much as is still wanted of it, copied (the piece is valid only during the call). */
function keep(into: Buffer[], kept: number, piece: Uint8Array, limit: number): number {
  const n = Math.min(limit - kept, piece.length);
  if (n <= 0) return kept;
  into.push(Buffer.from(piece.subarray(0, n)));
  return kept + n;
}

export class Http1Observer {
  readonly #options: Http1ObserverOptions;
  readonly #now: () => number;
  readonly #requests: MessageReader;
  readonly #responses: MessageReader;
  /** Requests whose response has not ended, oldest first. */
  readonly #pending: Exchange[] = [];
  /** The request being read (its body may still come after its response). */
  #reading: Exchange | undefined;
  #nextIndex = 0;
  #requestStart = 0;
  #done = false;

  constructor(options: Http1ObserverOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.timeOrigin + performance.now());
    this.#requests = new MessageReader({
      begin: () => (this.#requestStart = this.#now()),
      head: (text) => this.#requestHead(text),
      body: (piece) => {
        const ex = this.#reading;
        if (ex !== undefined) ex.requestBodyBytes = keep(ex.requestBody, ex.requestBodyBytes, piece, this.#options.bodyBytes);
      },
      end: (bytes) => {
        if (this.#reading !== undefined) this.#reading.bytesIn += bytes;
      },
    });
    this.#responses = new MessageReader({
      begin: () => undefined,
      head: (text) => this.#responseHead(text),
      body: (piece) => {
        const ex = this.#pending[0];
        if (ex !== undefined) ex.responseBodyBytes = keep(ex.responseBody, ex.responseBodyBytes, piece, this.#options.bodyBytes);
      },
      end: (bytes) => this.#responseEnded(bytes),
    });
  }

  /** False once it has given up, or the connection stopped being HTTP. */
  get active(): boolean {
    return !this.#done && this.#requests.state !== 'failed' && this.#responses.state !== 'failed';
  }

  fromCaller(piece: Uint8Array): void {
    if (!this.active) return;
    this.#requests.feed(piece);
    if (this.#requests.state === 'failed') this.#giveUp();
  }

  toCaller(piece: Uint8Array): void {
    if (!this.active) return;
    this.#responses.feed(piece);
    if (this.#responses.state === 'failed') this.#giveUp();
  }

  /**
   * The connection closed: a response that runs to the close has ended; requests still without
   * a (whole) response are reported with `error` (or why they are incomplete).
   */
  closed(error?: string): void {
    if (!this.active) return;
    const first = this.#pending[0];
    if (first !== undefined && this.#responses.state === 'close') {
      this.#responseEnded(this.#responses.count);
    }
    for (const ex of this.#pending.splice(0)) {
      ex.bytesOut += ex === first ? this.#responses.count : 0;
      this.#report(ex, error !== undefined && error !== '' ? error : ex.status === 0 ? 'the connection closed before the response' : 'the connection closed before the response ended');
    }
    this.#done = true;
  }

  #giveUp(): void {
    this.#done = true;
    this.#pending.length = 0;
    this.#reading = undefined;
  }

  #requestHead(text: string): Framing | undefined {
    const head = parseHead(text);
    const m = head === undefined ? null : /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/.exec(head.first);
    if (head === undefined || m === null) return undefined;
    const method = m[1] ?? '';
    const ex: Exchange = {
      index: this.#nextIndex++,
      startedAt: this.#requestStart,
      method,
      path: m[2] ?? '',
      requestHeaders: head.headers,
      responseHeaders: [],
      status: 0,
      requestBody: [],
      requestBodyBytes: 0,
      responseBody: [],
      responseBodyBytes: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    this.#pending.push(ex);
    this.#reading = ex;
    if (method === 'CONNECT') {
      // What follows is a tunnel's, whatever the answer; the response says whether it opened.
      ex.bytesIn += Buffer.byteLength(text, 'latin1');
      return { kind: 'stop' };
    }
    const framing = bodyFraming(head.headers, { kind: 'none' });
    if (framing !== undefined && asksUpgrade(head.headers) && framing.kind === 'none') {
      // Past an upgrade request the caller may speak the new protocol at once.
      ex.bytesIn += Buffer.byteLength(text, 'latin1');
      return { kind: 'stop' };
    }
    return framing;
  }

  #responseHead(text: string): Framing | undefined {
    const head = parseHead(text);
    const m = head === undefined ? null : /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(head.first);
    const ex = this.#pending[0];
    if (head === undefined || m === null || ex === undefined) return undefined;
    const status = Number(m[1]);
    if (status >= 100 && status < 200 && status !== 101) {
      // 100 Continue, 103 Early Hints: the final response is still to come (its bytes count at its end).
      return { kind: 'none' };
    }
    ex.status = status;
    ex.responseHeaders = head.headers;
    if (status === 101 || (ex.method === 'CONNECT' && status >= 200 && status < 300)) {
      ex.bytesOut += Buffer.byteLength(text, 'latin1');
      this.#finish(ex);
      this.#done = true;
      return { kind: 'stop' };
    }
    if (ex.method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' };
    return bodyFraming(head.headers, { kind: 'close' });
  }

  #responseEnded(bytes: number): void {
    const ex = this.#pending[0];
    if (ex === undefined) return;
    ex.bytesOut += bytes;
    if (ex.status === 0) return; // an interim (1xx) response ended; the final one follows
    this.#finish(ex);
    if (this.#requests.state === 'stopped' && !this.#done) {
      // An upgrade or CONNECT that was refused: the caller's side was not followed past it.
      this.#done = true;
    }
  }

  #finish(ex: Exchange): void {
    this.#pending.shift();
    this.#report(ex, '');
  }

  #report(ex: Exchange, error: string): void {
    this.#options.onExchange({
      index: ex.index,
      method: ex.method,
      path: ex.path,
      status: ex.status,
      requestHeaders: ex.requestHeaders,
      responseHeaders: ex.responseHeaders,
      requestBody: ex.requestBody.length === 1 ? (ex.requestBody[0] as Buffer) : Buffer.concat(ex.requestBody),
      responseBody: ex.responseBody.length === 1 ? (ex.responseBody[0] as Buffer) : Buffer.concat(ex.responseBody),
      startedAt: Math.floor(ex.startedAt),
      durationMs: this.#now() - ex.startedAt,
      bytesIn: ex.bytesIn,
      bytesOut: ex.bytesOut,
      error,
    });
  }
}
