import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  connect as connectH2,
  constants as h2,
  createServer as createH2Server,
  type ClientHttp2Session,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import { pairsFromObject, pairsFromRaw, type HeaderPairs } from './routes.js';
import { readProtocol, replaying } from './sniff.js';
import { splice } from '@telepresence-ts/core/splice';

/** What the router asks of the agent, for one route. */
export interface RouterPorts {
  /** Where a request with these headers goes now: an intercept's id, or undefined for the app. */
  readonly destinationFor: (headers: HeaderPairs) => string | undefined;
  /** A tunnel to the intercept's owner, or undefined when there is no manager session to open one on. */
  readonly openTunnel: (interceptId: string, source: string) => Duplex | undefined;
  /** A new connection to the app's port. */
  readonly dialApp: () => Duplex;
}

/** The upstream connections of one downstream connection, one per destination. */
class Upstreams {
  /** Keyed by intercept id; '' is the app. */
  readonly #agents = new Map<string, Agent>();
  readonly #sessions = new Map<string, ClientHttp2Session>();
  readonly #open: (destination: string | undefined) => Duplex;
  #closed = false;

  constructor(open: (destination: string | undefined) => Duplex) {
    this.#open = open;
  }

  /**
   * An HTTP/1.1 client agent holding at most one keep-alive connection to `destination`: a
   * downstream connection's requests to one place reuse one tunnel (or app connection), in
   * order, as they would have without the agent.
   */
  agent(destination: string | undefined): Agent {
    const key = destination ?? '';
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = new UpstreamAgent(() => this.#open(destination));
      this.#agents.set(key, agent);
      if (this.#closed) agent.destroy();
    }
    return agent;
  }

  /** An HTTP/2 session to `destination`, shared by every stream of the downstream session that goes there. */
  session(destination: string | undefined): ClientHttp2Session {
    const key = destination ?? '';
    const existing = this.#sessions.get(key);
    if (existing !== undefined && !existing.closed && !existing.destroyed) return existing;
    // The authority is only a default; every request carries the downstream request's own.
    const session = connectH2('http://localhost', { createConnection: () => this.#open(destination) });
    session.on('error', () => {});
    session.once('close', () => {
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
    });
    this.#sessions.set(key, session);
    if (this.#closed) session.destroy();
    return session;
  }

  close(): void {
    this.#closed = true;
    for (const agent of this.#agents.values()) agent.destroy();
    for (const session of this.#sessions.values()) session.destroy();
  }
}

/**
 * An http.Agent whose connections are whatever `open` returns: a tunnel (a plain duplex) or a
 * socket to the app. One connection, kept alive; requests queue for it.
 */
class UpstreamAgent extends Agent {
  readonly #open: () => Duplex;

  constructor(open: () => Duplex) {
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
    this.#open = open;
  }

  override createConnection(): Duplex {
    return socketLike(this.#open());
  }
}

/**
 * node:http's client and Agent call a few net.Socket methods on a connection (TCP keep-alive,
 * ref/unref and timers when it idles, destroySoon after a `Connection: close` response); a tunnel
 * gets harmless stand-ins.
 */
function socketLike(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>;
  const self = (): Duplex => stream;
  for (const name of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) {
    if (typeof s[name] !== 'function') s[name] = self;
  }
  if (typeof s['destroySoon'] !== 'function') {
    s['destroySoon'] = () => {
      stream.end();
      if (stream.writableFinished) stream.destroy();
      else stream.once('finish', () => stream.destroy());
    };
  }
  return stream;
}

/** Hop-by-hop and HTTP/1-only headers that HTTP/2 forbids (RFC 9113 8.2.2). */
const H2_CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** HTTP/2 headers to forward: the received ones, minus connection-specific ones. */
function h2Headers(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!H2_CONNECTION_HEADERS.has(name) && !(name === 'te' && value !== 'trailers')) out[name] = value;
  }
  return out;
}

/**
 * The per-request router of a port that has personal intercepts: it terminates each connection
 * as HTTP and sends every request to the first personal intercept whose headers it carries, or
 * to the app.
 *
 * - HTTP/1.x (node:http's server parses; keep-alive and pipelining keep their order): each
 *   request is forwarded over an upstream connection kept per destination and per downstream
 *   connection, so the intercept's owner sees one keep-alive connection per downstream one.
 *   Bodies stream both ways (chunked or sized); the response's status, headers and trailers are
 *   passed back as received.
 * - An upgrade (WebSocket) or CONNECT request: its destination gets the raw connection for the
 *   rest of its life.
 * - h2c with prior knowledge (gRPC): routed per stream, over one HTTP/2 session per destination
 *   and downstream session; trailers (grpc-status) and resets are passed back.
 * - Anything else: spliced to the app unchanged.
 */
export class HttpRouter {
  readonly #ports: RouterPorts;
  readonly #log: Logger;
  readonly #label: string;
  readonly #h1: Server;
  readonly #h2: Http2Server;
  readonly #upstreams = new WeakMap<object, Upstreams>();
  /** The upstreams of the connection being handed to the HTTP/2 server (it makes the session synchronously). */
  #handing: Upstreams | undefined;

  constructor(ports: RouterPorts, log: Logger, label: string) {
    this.#ports = ports;
    this.#log = log;
    this.#label = label;
    // No request timeout: streams and long polls last as long as the app lets them. Header blocks
    // up to 64 KiB (node's default is 16 KiB): a request the app would accept must not fail here.
    this.#h1 = createServer({ requestTimeout: 0, maxHeaderSize: 64 * 1024 }, (req, res) => this.#request(req, res));
    // The app decides how long an idle connection lives, as it does without the agent.
    this.#h1.keepAliveTimeout = 0;
    this.#h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    this.#h1.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    this.#h1.on('clientError', (err: Error, socket: Duplex) => {
      this.#log.debug('bad HTTP request', { route: this.#label, error: err.message });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.#h2 = createH2Server();
    this.#h2.on('session', (session: Http2Session) => {
      if (this.#handing !== undefined) this.#upstreams.set(session, this.#handing);
      session.on('error', () => {});
    });
    this.#h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#stream(stream, headers));
  }

  /** Serves one accepted connection; resolves when it has closed. */
  async handle(socket: Socket, source: string): Promise<void> {
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const upstreams = new Upstreams((destination) => this.#connect(destination, source));
    socket.once('close', () => upstreams.close());
    const { protocol, head } = await readProtocol(socket);
    this.#log.debug('connection protocol', { route: this.#label, source, protocol });
    if (protocol === 'http1') {
      socket.unshift(head);
      this.#upstreams.set(socket, upstreams);
      this.#h1.emit('connection', socket);
      socket.resume();
    } else if (protocol === 'h2c') {
      this.#handing = upstreams;
      try {
        this.#h2.emit('connection', replaying(socket, head));
      } finally {
        this.#handing = undefined;
      }
    } else {
      const app = this.#ports.dialApp();
      if (head.length > 0) app.write(head);
      if (socket.readableEnded) app.end();
      void splice(socket, app);
    }
    await closed;
  }

  /** A connection to the destination: a tunnel to the intercept's owner, else (or without a session) the app. */
  #connect(destination: string | undefined, source: string): Duplex {
    if (destination !== undefined) {
      try {
        const tunnel = this.#ports.openTunnel(destination, source);
        if (tunnel !== undefined) return tunnel;
      } catch (err: unknown) {
        this.#log.warn('cannot open a tunnel; passing the request to the app', { interceptId: destination, error: (err as Error).message });
      }
    }
    return this.#ports.dialApp();
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    const upstreams = this.#upstreams.get(req.socket);
    if (upstreams === undefined) {
      res.destroy();
      return;
    }
    const destination = this.#ports.destinationFor(pairsFromRaw(req.rawHeaders));
    this.#log.debug('request', { route: this.#label, method: req.method, path: req.url, via: destination ?? 'app' });
    // The response goes back as the upstream sent it: no Date of our own.
    res.sendDate = false;
    const up = request({
      agent: upstreams.agent(destination),
      method: req.method,
      path: req.url,
      // Raw, to keep every header's case, order and repetitions (Host included).
      headers: req.rawHeaders,
      setHost: false,
    });
    up.on('response', (upRes: IncomingMessage) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
      upRes.pipe(res, { end: false });
      upRes.on('end', () => {
        if (upRes.rawTrailers.length > 0) res.addTrailers(pairsFromRaw(upRes.rawTrailers) as Array<[string, string]>);
        res.end();
      });
      upRes.on('error', () => res.destroy());
    });
    up.on('error', (err: Error) => {
      this.#log.debug('upstream request failed', { route: this.#label, via: destination ?? 'app', error: err.message });
      if (res.headersSent) {
        res.destroy();
      } else {
        const body = `traffic-agent: ${destination === undefined ? 'the app' : `intercept ${destination}`} did not answer: ${err.message}\n`;
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  /** An upgrade or CONNECT: its destination gets the connection, raw, from this request on. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const destination = this.#ports.destinationFor(pairsFromRaw(req.rawHeaders));
    this.#log.debug('upgrade', { route: this.#label, method: req.method, path: req.url, via: destination ?? 'app' });
    const source = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    this.#upstreams.get(req.socket)?.close();
    const peer = this.#connect(destination, source);
    const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}`];
    for (const [name, value] of pairsFromRaw(req.rawHeaders)) lines.push(`${name}: ${value}`);
    peer.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
    if (head.length > 0) peer.write(head);
    void splice(socket, peer);
  }

  #stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const upstreams = this.#upstreams.get(stream.session as Http2Session);
    if (upstreams === undefined) {
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const destination = this.#ports.destinationFor(pairsFromObject(headers));
    this.#log.debug('stream', { route: this.#label, method: headers[':method'], path: headers[':path'], via: destination ?? 'app' });
    let up;
    try {
      up = upstreams.session(destination).request(h2Headers(headers));
    } catch (err: unknown) {
      this.#log.debug('upstream stream failed', { route: this.#label, error: (err as Error).message });
      stream.respond({ ':status': 502 }, { endStream: true });
      return;
    }
    let trailers: IncomingHttpHeaders = {};
    up.on('response', (resHeaders: IncomingHttpHeaders, flags: number) => {
      if ((flags & h2.NGHTTP2_FLAG_END_STREAM) !== 0) {
        // Headers only (a gRPC error is often just this): no body, no trailers.
        stream.respond(resHeaders, { endStream: true });
        return;
      }
      stream.respond(resHeaders, { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
    // Empty trailers make node end the stream with an empty DATA frame instead.
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    up.on('error', () => {});
    up.on('close', () => {
      if (stream.closed) return;
      const code = up.rstCode ?? h2.NGHTTP2_INTERNAL_ERROR;
      if (!stream.headersSent) {
        stream.respond({ ':status': 502 }, { endStream: true });
      } else if (code !== h2.NGHTTP2_NO_ERROR) {
        stream.close(code);
      }
    });
    stream.on('close', () => {
      const code = stream.rstCode;
      if (!up.closed && code !== undefined && code !== h2.NGHTTP2_NO_ERROR) up.close(code);
    });
    stream.pipe(up);
  }
}
