import type { Duplex } from 'node:stream';
import { splice } from '@telepresence-ts/core/splice';
import type { HttpRequestHead } from '@telepresence-ts/core/http-filter';

/** Request heads up to this size are accepted (node's default is 16 KiB; apps often allow more). */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;
/** A response head larger than this is not one we can pass on. */
const MAX_RESPONSE_HEAD_BYTES = 256 * 1024;
/** A chunk-size or trailer line longer than this is not HTTP. */
const MAX_LINE_BYTES = 8 * 1024;
/** What one upstream may have waiting for its turn before it is paused. */
const UPSTREAM_BUFFER_BYTES = 1024 * 1024;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Method, target (visible ASCII only: no controls, no bytes past 0x7e, as node's parser), version.
 * More than one space between them is taken, as node's parser takes it (RFC 9112 3: a recipient
 * may accept whitespace there; it does not move a message boundary).
 */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([\x21-\x7e]+) +HTTP\/1\.([01])$/;
/** A field value: visible characters, obs-text, spaces and tabs; no other control (RFC 9110 5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/**
 * A chunk-size line (RFC 9112 7.1): hex digits, then extensions `;name[=token|quoted-string]`, and
 * nothing else: no whitespace after the size nor around `;` and `=` (node's parser refuses it, and
 * a proxy that read more than its upstream would frame the body otherwise).
 */
const CHUNK_SIZE_LINE = /^([0-9a-fA-F]+)(?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:=(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;

/** What the proxy asks of the router for one downstream connection. */
export interface H1Ports {
  /** Where this request (method, target as sent, headers) goes: an intercept's id, or undefined for the app. */
  readonly destinationFor: (request: HttpRequestHead) => string | undefined;
  /** A new connection to `destination` (a tunnel, or the app). */
  readonly connect: (destination: string | undefined) => Duplex;
  /** For the log: one line per request. */
  readonly onRequest: (method: string, target: string, destination: string | undefined) => void;
  /** Why a downstream connection was refused as not HTTP, or why an upstream failed. */
  readonly onProblem: (message: string) => void;
}

/** The parsed head of a request or response; `bytes` is the whole head as received. */
interface Head {
  readonly startLine: string;
  /** Names with their case, values trimmed: `[name, value, name, value, ...]`. */
  readonly raw: string[];
  readonly bytes: Buffer;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Where a bare CR or LF (one not in a CRLF pair) is in `bytes` up to `end`, or -1. Lines of a head
 * end with CRLF only: a parser that took a bare LF for a line end and one that did not would
 * see different headers (RFC 9112 2.2 lets a recipient refuse them; node's parser does).
 */
function bareLineBreak(bytes: Buffer, end: number): number {
  for (let i = bytes.indexOf(10); i !== -1 && i < end; i = bytes.indexOf(10, i + 1)) {
    if (i === 0 || bytes[i - 1] !== 13) return i;
  }
  for (let i = bytes.indexOf(13); i !== -1 && i < end; i = bytes.indexOf(13, i + 1)) {
    // A CR as the last byte so far may yet be followed by its LF.
    if (i + 1 < bytes.length && bytes[i + 1] !== 10) return i;
  }
  return -1;
}

/** One field line `name: value` (RFC 9112 5), its value trimmed; throws on anything else. */
function parseFieldLine(line: string): [string, string] {
  const colon = line.indexOf(':');
  const name = colon > 0 ? line.slice(0, colon) : '';
  // No obsolete line folding, no whitespace before the colon (RFC 9112 5.1, 5.2).
  if (!TOKEN.test(name)) throw new HttpError(400, `a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (!FIELD_VALUE.test(value)) throw new HttpError(400, `a control character in the value of ${name}`);
  // node's parser refuses a tab after the value of the fields that frame a body, though RFC 9110
  // allows it: refused here too, so that no upstream reads the framing otherwise.
  if (/\t[ \t]*$/.test(line) && /^(?:content-length|transfer-encoding)$/i.test(name)) throw new HttpError(400, `a tab after the value of ${name}`);
  return [name, value];
}

/** Parses a head that ends with CRLFCRLF (its last 4 bytes). */
function parseHead(bytes: Buffer): Head {
  if (bareLineBreak(bytes, bytes.length) !== -1) throw new HttpError(400, 'a line that does not end with CRLF');
  const lines = bytes.toString('latin1', 0, bytes.length - 4).split('\r\n');
  const startLine = lines[0] ?? '';
  const raw: string[] = [];
  for (let i = 1; i < lines.length; i++) raw.push(...parseFieldLine(lines[i]!));
  return { startLine, raw, bytes };
}

/** How many header fields named `name` (any case) `raw` has. */
function fieldCount(raw: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) n++;
  return n;
}

/** The values of header `name` (any case), comma-joined lists split, lower-cased. */
function tokens(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== name) continue;
    for (const part of raw[i + 1]!.split(',')) {
      const t = part.trim().toLowerCase();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

/** How a message's body is delimited (RFC 9112 6.3). */
type Framing = { readonly kind: 'none' } | { readonly kind: 'length'; readonly length: number } | { readonly kind: 'chunked' } | { readonly kind: 'close' };

/**
 * A message's framing from its Transfer-Encoding and Content-Length, or undefined when it has
 * neither. A request whose framing two parsers could read differently is refused (RFC 9112 6.1,
 * 6.3), since passing it on as it is would let a crafted body smuggle a request past the router
 * to whichever destination reads the framing the other way: both Transfer-Encoding and
 * Content-Length, a final coding other than chunked, chunked twice, more than one Content-Length
 * (even equal ones, which node's parser refuses), or one that is not a plain number.
 */
function bodyFraming(raw: readonly string[], what: 'request' | 'response'): Framing | undefined {
  const codings = tokens(raw, 'transfer-encoding');
  const hasLength = fieldCount(raw, 'content-length') > 0;
  if (what === 'request') {
    if (fieldCount(raw, 'transfer-encoding') > 0 && hasLength) throw new HttpError(400, 'a request with both Transfer-Encoding and Content-Length');
    if (codings.filter((c) => c === 'chunked').length > 1) throw new HttpError(400, 'a request body chunked twice');
  }
  if (codings.length > 0) {
    if (codings[codings.length - 1] === 'chunked') return { kind: 'chunked' };
    if (what === 'request') throw new HttpError(400, 'a request body whose transfer coding is not chunked');
    return { kind: 'close' };
  }
  if (!hasLength) return undefined;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'content-length') values.push(raw[i + 1]!);
  if (what === 'request' && values.length > 1) throw new HttpError(400, 'a request with more than one Content-Length');
  // A response's repeated equal values are one length (RFC 9112 6.3, 5); a request's must be one number.
  const lengths = new Set(what === 'request' ? values : tokens(raw, 'content-length'));
  const [only] = lengths;
  if (lengths.size > 1 || only === undefined || !/^\d{1,15}$/.test(only)) throw new HttpError(400, `an invalid Content-Length: ${JSON.stringify(values.join(', ').slice(0, 40))}`);
  const length = Number(only);
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/**
 * Where a body ends, fed piece by piece: `take` answers how many bytes of `chunk` belong to the
 * body (all of them, unless it ends inside `chunk`) and `done` says when it has ended.
 */
class BodyReader {
  #left: number;
  readonly #chunked: boolean;
  /** Chunked: 'size' line, 'data' bytes, the CRLF after them, 'trailer' lines. */
  #state: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  #line = '';
  done: boolean;

  constructor(framing: Framing) {
    this.#chunked = framing.kind === 'chunked';
    this.#left = framing.kind === 'length' ? framing.length : 0;
    this.done = framing.kind === 'none';
  }

  take(chunk: Buffer): number {
    if (this.done) return 0;
    if (!this.#chunked) {
      // A length, or (with #left 0 and not done) the rest of the connection.
      if (this.#left === 0) return chunk.length;
      const n = Math.min(this.#left, chunk.length);
      this.#left -= n;
      if (this.#left === 0) this.done = true;
      return n;
    }
    let i = 0;
    while (i < chunk.length && !this.done) {
      if (this.#state === 'data') {
        const n = Math.min(this.#left, chunk.length - i);
        this.#left -= n;
        i += n;
        if (this.#left === 0) this.#state = 'data-end';
        continue;
      }
      // A line (chunk size, the CRLF after data, or a trailer): up to its LF.
      const lf = chunk.indexOf(10, i);
      const end = lf === -1 ? chunk.length : lf;
      this.#line += chunk.toString('latin1', i, end);
      if (this.#line.length > MAX_LINE_BYTES) throw new HttpError(400, 'a chunked body line too long');
      i = end;
      if (lf === -1) break;
      i++;
      // Every line of a chunked body ends with CRLF, as the lines of a head (RFC 9112 7.1).
      if (!this.#line.endsWith('\r') || this.#line.indexOf('\r') !== this.#line.length - 1) throw new HttpError(400, 'a chunked body line that does not end with CRLF');
      const line = this.#line.slice(0, -1);
      this.#line = '';
      if (this.#state === 'size') {
        const size = CHUNK_SIZE_LINE.exec(line);
        if (size === null) throw new HttpError(400, `a malformed chunk size: ${JSON.stringify(line.slice(0, 40))}`);
        // Leading zeros are allowed; a size past 2^53 is not one any body has (node refuses it too).
        const digits = size[1]!.replace(/^0+(?=.)/, '');
        if (digits.length > 13 || parseInt(digits, 16) > Number.MAX_SAFE_INTEGER) throw new HttpError(400, 'a chunk size too large');
        this.#left = parseInt(digits, 16);
        this.#state = this.#left === 0 ? 'trailer' : 'data';
      } else if (this.#state === 'data-end') {
        if (line !== '') throw new HttpError(400, 'a chunk longer than its size');
        this.#state = 'size';
      } else if (line === '') {
        this.done = true;
      } else {
        parseFieldLine(line);
      }
    }
    return i;
  }
}

/** One connection to a destination, kept for the downstream connection's later requests there. */
class Upstream {
  readonly buffered: Buffer[] = [];
  bufferedBytes = 0;
  /** It ended (a FIN) or failed: no more bytes will come. */
  gone = false;
  failure: string | undefined;
  /** Requests of ours on it whose responses have not ended. */
  pending = 0;
  /** Part of a request that turned out malformed went on it: dropped once its earlier responses are back. */
  poisoned = false;

  constructor(
    readonly stream: Duplex,
    readonly destination: string | undefined,
  ) {}
}

/** A request whose response goes downstream in its turn. */
interface Exchange {
  readonly upstream: Upstream | undefined;
  readonly method: string;
  /** The downstream connection closes after this response. */
  closeAfter: boolean;
  /** A response made here (an error) instead of one from upstream. */
  readonly local?: Buffer;
  /** The response's head while it arrives, then its body. */
  head: Buffer[];
  headBytes: number;
  body: BodyReader | undefined;
  /** The response's body ends with the connection. */
  untilClose: boolean;
  /** Bytes of the response were passed downstream. */
  started: boolean;
}

/** A response of the agent's own: `traffic-agent: <message>` as plain text. */
function agentResponse(status: number, reason: string, message: string, close: boolean): Buffer {
  const text = Buffer.from(`traffic-agent: ${message}\n`, 'utf8');
  const head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${text.length}\r\n${close ? 'connection: close\r\n' : ''}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), text]);
}

/**
 * Routes the HTTP/1.x requests of one downstream connection, each by its headers, without
 * re-encoding anything: request heads are parsed only to choose a destination and to find where
 * each message ends, and every byte goes on as received (header case, order and repetitions,
 * chunk extensions and trailers included). Each destination gets one upstream connection for
 * this downstream connection, reused by its later requests, and responses come back in the
 * order of the requests (pipelining keeps working across destinations).
 *
 * - An upgrade (WebSocket) or CONNECT request: once every earlier response is back, its
 *   destination gets the rest of the connection, raw.
 * - A destination that fails before answering: a 502 for each of its requests; others go on.
 * - Malformed input: a 400 (431 for a head too large) after the earlier responses, then close.
 * - The downstream connection going away takes its upstream connections with it.
 *
 * Resolves when the downstream connection has closed.
 */
export function proxyHttp1(downstream: Duplex, first: Buffer, ports: H1Ports): Promise<void> {
  return new Promise((resolve) => {
    const upstreams = new Map<string, Upstream>();
    const queue: Exchange[] = [];
    /** Unparsed downstream bytes (a head not yet whole). */
    let pending: Buffer = first;
    /** The body of the request being forwarded, and where it goes. */
    let body: BodyReader | undefined;
    let bodyTo: Upstream | undefined;
    /** The exchange of the request whose body is being forwarded. */
    let bodyExchange: Exchange | undefined;
    /** No more requests are read: an error answered, a close asked for, or an upgrade waiting. */
    let reading = true;
    /** A response of our own (an error) ends the connection once the earlier responses are back. */
    let refused = false;
    /** Further requests are taken (false after one that asks to close the connection). */
    let moreRequests = true;
    let upgrade: { readonly head: Head; rest: Buffer; readonly destination: string | undefined } | undefined;
    let finished = false;
    /** The caller half-closed after whole requests: the connection ends once they are answered. */
    let callerDone = false;
    let waitingForDrain = false;
    /** The upstream whose full buffer holds back the caller's request body. */
    let pausedFor: Upstream | undefined;
    const resumeFrom = (up: Upstream): void => {
      if (pausedFor !== up) return;
      pausedFor = undefined;
      downstream.resume();
    };

    const finish = (): void => {
      if (finished) return;
      finished = true;
      for (const up of upstreams.values()) up.stream.destroy();
      upstreams.clear();
      downstream.destroy();
    };

    const upstreamFor = (destination: string | undefined): Upstream => {
      const key = destination ?? '';
      const existing = upstreams.get(key);
      if (existing !== undefined && !existing.gone) return existing;
      const up = new Upstream(ports.connect(destination), destination);
      upstreams.set(key, up);
      up.stream.on('data', (chunk: Buffer) => {
        up.buffered.push(chunk);
        up.bufferedBytes += chunk.length;
        if (up.bufferedBytes > UPSTREAM_BUFFER_BYTES) up.stream.pause();
        pump();
      });
      const gone = (failure?: string): void => {
        if (up.gone) return;
        up.gone = true;
        up.failure = failure;
        if (upstreams.get(key) === up) upstreams.delete(key);
        if (bodyTo === up) bodyTo = undefined;
        resumeFrom(up);
        pump();
      };
      up.stream.on('end', () => {
        gone();
        // The server closed its side: ours goes too (what it sent is still passed on).
        up.stream.end();
      });
      up.stream.on('error', (err: Error) => gone(err.message));
      up.stream.on('close', () => gone('the connection closed'));
      return up;
    };

    /**
     * Gives up the request whose body is being forwarded (malformed, or cut by the caller's end).
     * The part of it that went upstream leaves that connection unusable: it goes once the
     * responses to earlier requests on it are back (dropping it now would fail those too), and
     * the request gets no response of the destination's. False when its response has already
     * started downstream, where nothing else can follow it cleanly.
     */
    const dropBody = (): boolean => {
      const up = bodyTo;
      const at = bodyExchange === undefined ? -1 : queue.indexOf(bodyExchange);
      body = undefined;
      bodyTo = undefined;
      bodyExchange = undefined;
      if (at === 0 && queue[0]!.started) return false;
      if (at !== -1) {
        queue.splice(at, 1);
        if (up !== undefined) up.pending--;
      }
      if (up !== undefined) {
        up.poisoned = true;
        if (up.pending === 0) up.stream.destroy();
      }
      return true;
    };

    const answerLocally = (status: number, reason: string, message: string): void => {
      ports.onProblem(message);
      reading = false;
      refused = true;
      // Nothing more of the caller's is read; a FIN from it now is no abort.
      pending = Buffer.alloc(0);
      queue.push({ upstream: undefined, method: '', closeAfter: true, local: agentResponse(status, reason, message, true), head: [], headBytes: 0, body: undefined, untilClose: false, started: false });
      pump();
    };

    /** Parses and forwards what downstream sent, as far as it goes. */
    const consume = (): void => {
      while (reading && pending.length > 0) {
        if (body !== undefined) {
          let n: number;
          try {
            n = body.take(pending);
          } catch (err: unknown) {
            if (dropBody()) answerLocally(400, 'Bad Request', (err as Error).message);
            else {
              ports.onProblem((err as Error).message);
              finish();
            }
            return;
          }
          const piece = pending.subarray(0, n);
          pending = pending.subarray(n);
          if (bodyTo !== undefined && !bodyTo.gone && !bodyTo.stream.write(piece)) {
            const to = bodyTo;
            pausedFor = to;
            downstream.pause();
            to.stream.once('drain', () => resumeFrom(to));
          }
          if (body.done) {
            body = undefined;
            bodyTo = undefined;
            bodyExchange = undefined;
          }
          continue;
        }
        if (!moreRequests) {
          pending = Buffer.alloc(0);
          return;
        }
        // Empty lines before a request line are skipped (RFC 9112 2.2), as node's parser does:
        // some clients send a CRLF after a body.
        let blank = 0;
        while (pending[blank] === 13 && pending[blank + 1] === 10) blank += 2;
        if (blank > 0) {
          pending = pending.subarray(blank);
          continue;
        }
        const end = pending.indexOf(CRLFCRLF);
        if ((end === -1 ? pending.length : end + 4) > MAX_REQUEST_HEAD_BYTES) {
          answerLocally(431, 'Request Header Fields Too Large', `a request head over ${MAX_REQUEST_HEAD_BYTES} bytes`);
          return;
        }
        if (end === -1) {
          // A head whose lines end with a bare LF never ends with CRLFCRLF: refuse it now.
          if (bareLineBreak(pending, pending.length) !== -1) answerLocally(400, 'Bad Request', 'a line that does not end with CRLF');
          return;
        }
        let head: Head;
        let framing: Framing | undefined;
        let method: string;
        let target: string;
        let minor: string;
        try {
          head = parseHead(pending.subarray(0, end + 4));
          const line = REQUEST_LINE.exec(head.startLine);
          if (line === null) throw new HttpError(400, `not an HTTP/1.x request line: ${JSON.stringify(head.startLine.slice(0, 80))}`);
          [, method, target, minor] = line as unknown as [string, string, string, string];
          // An HTTP/1.1 request names its host (RFC 9112 3.2); node's server refuses one that does not.
          if (minor === '1' && fieldCount(head.raw, 'host') === 0) throw new HttpError(400, 'an HTTP/1.1 request without Host');
          framing = bodyFraming(head.raw, 'request');
        } catch (err: unknown) {
          answerLocally((err as HttpError).status ?? 400, 'Bad Request', (err as Error).message);
          return;
        }
        pending = pending.subarray(end + 4);
        const pairs: Array<[string, string]> = [];
        for (let i = 0; i + 1 < head.raw.length; i += 2) pairs.push([head.raw[i]!, head.raw[i + 1]!]);
        const destination = ports.destinationFor({ method, target, headers: pairs });
        ports.onRequest(method, target, destination);
        const connection = tokens(head.raw, 'connection');
        if (method === 'CONNECT' || (connection.includes('upgrade') && tokens(head.raw, 'upgrade').length > 0)) {
          // Everything after this head belongs to whoever takes the upgrade.
          reading = false;
          upgrade = { head, rest: pending, destination };
          pending = Buffer.alloc(0);
          downstream.pause();
          pump();
          return;
        }
        const up = upstreamFor(destination);
        up.pending++;
        // A chunked HTTP/1.0 request may come from a faulty 1.0 proxy: its connection ends after
        // it (RFC 9112 6.1).
        const closeAfter = minor === '0' ? !connection.includes('keep-alive') || framing?.kind === 'chunked' : connection.includes('close');
        const exchange: Exchange = { upstream: up, method, closeAfter, head: [], headBytes: 0, body: undefined, untilClose: false, started: false };
        queue.push(exchange);
        up.stream.write(head.bytes);
        if (framing !== undefined && framing.kind !== 'none') {
          body = new BodyReader(framing);
          bodyTo = up;
          bodyExchange = exchange;
        }
        if (closeAfter) moreRequests = false;
      }
    };

    /** Passes responses downstream in request order, as far as they have arrived. */
    const pump = (): void => {
      while (!finished && !waitingForDrain && queue.length > 0) {
        const ex = queue[0]!;
        if (ex.local !== undefined) {
          queue.shift();
          downstream.write(ex.local);
          closeDownstream();
          return;
        }
        const up = ex.upstream!;
        const chunk = up.buffered.shift();
        if (chunk === undefined) {
          if (!up.gone) return;
          if (ex.untilClose) {
            // A body that ends with the connection: it has.
            queue.shift();
            closeDownstream();
            return;
          }
          if (ex.started) {
            ports.onProblem(`${label(up.destination)} closed the connection in the middle of a response`);
            finish();
            return;
          }
          const message = `${label(up.destination)} did not answer: ${up.failure ?? 'it closed the connection'}`;
          ports.onProblem(message);
          queue.shift();
          up.pending--;
          write(agentResponse(502, 'Bad Gateway', message, false));
          if (ex.closeAfter) {
            closeDownstream();
            return;
          }
          continue;
        }
        up.bufferedBytes -= chunk.length;
        if (up.bufferedBytes <= UPSTREAM_BUFFER_BYTES) up.stream.resume();
        let used: number;
        try {
          used = feedResponse(ex, chunk);
        } catch (err: unknown) {
          ports.onProblem(`${label(up.destination)} sent a malformed response: ${(err as Error).message}`);
          finish();
          return;
        }
        if (used < chunk.length) {
          up.buffered.unshift(chunk.subarray(used));
          up.bufferedBytes += chunk.length - used;
        }
        if (ex.body?.done === true) {
          queue.shift();
          up.pending--;
          if (up.poisoned && up.pending === 0) up.stream.destroy();
          if (ex.closeAfter) {
            closeDownstream();
            return;
          }
          if (up.pending === 0 && up.buffered.length > 0) {
            // Bytes nobody asked for: this connection is out of step.
            up.stream.destroy();
          }
        }
      }
      if (queue.length === 0 && !finished && upgrade !== undefined) startUpgrade();
      else if (queue.length === 0 && !finished && callerDone) closeDownstream();
    };

    const closeDownstream = (): void => {
      reading = false;
      pending = Buffer.alloc(0);
      if (!downstream.writableEnded) downstream.end();
    };

    const write = (bytes: Buffer): void => {
      if (bytes.length === 0) return;
      if (!downstream.write(bytes)) {
        waitingForDrain = true;
        downstream.once('drain', () => {
          waitingForDrain = false;
          pump();
        });
      }
    };

    /** Takes what belongs to `ex`'s response from `chunk` and passes it on; the bytes used. */
    const feedResponse = (ex: Exchange, chunk: Buffer): number => {
      let used = 0;
      while (used < chunk.length && ex.body?.done !== true) {
        const rest = chunk.subarray(used);
        if (ex.body !== undefined) {
          const n = ex.body.take(rest);
          write(rest.subarray(0, n));
          used += n;
          continue;
        }
        // The head (or a 1xx head) of the response, possibly across chunks.
        const joined = ex.head.length === 0 ? rest : Buffer.concat([...ex.head, rest]);
        const searchFrom = Math.max(0, ex.headBytes - 3);
        const end = joined.indexOf(CRLFCRLF, searchFrom);
        if (end === -1) {
          if (joined.length > MAX_RESPONSE_HEAD_BYTES) throw new HttpError(502, 'a response head too large');
          ex.head = [joined];
          ex.headBytes = joined.length;
          return chunk.length;
        }
        const headBytes = joined.subarray(0, end + 4);
        used += end + 4 - ex.headBytes;
        ex.head = [];
        ex.headBytes = 0;
        const head = parseHead(headBytes);
        const status = STATUS_LINE.exec(head.startLine);
        if (status === null) throw new HttpError(502, `not an HTTP/1.x status line: ${JSON.stringify(head.startLine.slice(0, 80))}`);
        const code = Number(status[1]);
        write(headBytes);
        ex.started = true;
        if (code >= 100 && code < 200 && code !== 101) continue; // an interim response; the final one follows
        if (tokens(head.raw, 'connection').includes('close')) ex.closeAfter = true;
        const framing: Framing =
          ex.method === 'HEAD' || code === 204 || code === 304 ? { kind: 'none' } : code === 101 ? { kind: 'close' } : (bodyFraming(head.raw, 'response') ?? { kind: 'close' });
        if (framing.kind === 'close') ex.closeAfter = true;
        ex.body = new BodyReader(framing);
        ex.untilClose = framing.kind === 'close';
      }
      return used;
    };

    const startUpgrade = (): void => {
      const u = upgrade!;
      upgrade = undefined;
      for (const up of upstreams.values()) up.stream.end();
      upstreams.clear();
      const peer = ports.connect(u.destination);
      peer.write(u.head.bytes);
      if (u.rest.length > 0) peer.write(u.rest);
      downstream.removeListener('data', onData);
      downstream.removeListener('end', onEnd);
      void splice(downstream, peer);
      downstream.resume();
    };

    const onData = (chunk: Buffer): void => {
      if (upgrade !== undefined) {
        upgrade.rest = Buffer.concat([upgrade.rest, chunk]);
        return;
      }
      // After a close or an error was decided, what the caller still sends is not read.
      if (!reading) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      consume();
    };
    const onEnd = (): void => {
      // The caller went away in the middle of a request, which cannot be answered: it is
      // aborted upstream (so the developer's server sees it go), and the whole requests before
      // it are still answered, as node's server answers them.
      if (body !== undefined && !dropBody()) {
        finish();
        return;
      }
      pending = Buffer.alloc(0);
      // A half-close after whole requests (`nc`, some HTTP/1.0 clients). As a splice would, the
      // FIN goes on to each destination, whose server then decides (node's, like most, answers
      // what it was asked, then closes); one that closes without answering gets its requests a
      // 502. The connection ends once every request is answered.
      reading = false;
      moreRequests = false;
      callerDone = true;
      // After a refusal the FIN is not passed on: a destination that took it for the end would
      // close after its answer, and the connection with it, before our 400 went out.
      if (!refused) for (const up of upstreams.values()) if (!up.poisoned) up.stream.end();
      pump();
    };

    downstream.on('data', onData);
    downstream.on('end', onEnd);
    downstream.on('error', () => finish());
    downstream.once('close', () => {
      if (upgrade === undefined && !finished) finish();
      resolve();
    });
    // Our side is closed once everything is answered: the upstream connections are not needed.
    downstream.on('finish', () => {
      for (const up of upstreams.values()) up.stream.end();
    });
    consume();
    downstream.resume();
  });
}

function label(destination: string | undefined): string {
  return destination === undefined ? 'the app' : `intercept ${destination}`;
}
