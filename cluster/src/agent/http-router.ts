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
import type { HttpRequestHead } from '@telepresence-ts/core/http-filter';
import { pairsFromObject } from './routes.js';
import { proxyHttp1 } from './h1-proxy.js';
import { readProtocol, replaying } from './sniff.js';
import { splice } from '@telepresence-ts/core/splice';

/** What the router asks of the agent, for one route. */
export interface RouterPorts {
  /** Where this request (method, target, headers) goes now: an intercept's id, or undefined for the app. */
  readonly destinationFor: (request: HttpRequestHead) => string | undefined;
  /** A tunnel to the intercept's owner, or undefined when there is no manager session to open one on. */
  readonly openTunnel: (interceptId: string, source: string) => Duplex | undefined;
  /** A new connection to the app's port. */
  readonly dialApp: () => Duplex;
}

/** The upstream HTTP/2 sessions of one downstream h2c connection, one per destination. */
class Upstreams {
  /** Keyed by intercept id; '' is the app. */
  readonly #sessions = new Map<string, ClientHttp2Session>();
  readonly #open: (destination: string | undefined) => Duplex;
  /** Told where each stream goes (see HttpRouter.handle). */
  readonly routed: ((destination: string | undefined) => void) | undefined;
  #closed = false;

  constructor(open: (destination: string | undefined) => Duplex, routed?: (destination: string | undefined) => void) {
    this.#open = open;
    this.routed = routed;
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
    for (const session of this.#sessions.values()) session.destroy();
  }
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
 * as HTTP and sends every request to the first personal intercept that takes it (its headers,
 * path prefix and methods; `matchRequest`), or to the app.
 *
 * - HTTP/1.x (`proxyHttp1`): request heads are parsed to choose a destination and every byte
 *   goes on as received, over one upstream connection per destination and downstream
 *   connection, so the intercept's owner sees one keep-alive connection per downstream one.
 *   Pipelined requests are answered in order; bodies stream both ways; status lines, header
 *   case and trailers pass back unchanged. An upgrade (WebSocket) or CONNECT request gives its
 *   destination the raw connection for the rest of its life.
 * - h2c with prior knowledge (gRPC): routed per stream, over one HTTP/2 session per destination
 *   and downstream session; trailers (grpc-status) and resets are passed back.
 * - Anything else: spliced to the app unchanged.
 */
export class HttpRouter {
  readonly #ports: RouterPorts;
  readonly #log: Logger;
  readonly #label: string;
  readonly #h2: Http2Server;
  readonly #upstreams = new WeakMap<object, Upstreams>();
  /** The upstreams of the connection being handed to the HTTP/2 server (it makes the session synchronously). */
  #handing: Upstreams | undefined;

  constructor(ports: RouterPorts, log: Logger, label: string) {
    this.#ports = ports;
    this.#log = log;
    this.#label = label;
    this.#h2 = createH2Server();
    this.#h2.on('session', (session: Http2Session) => {
      if (this.#handing !== undefined) this.#upstreams.set(session, this.#handing);
      session.on('error', () => {});
    });
    this.#h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#stream(stream, headers));
  }

  /**
   * Serves one accepted connection; resolves when it has closed. `routed`, when given, is told
   * where each request went, in the order they came (the traffic view's "answered by").
   */
  async handle(socket: Socket, source: string, routed?: (destination: string | undefined) => void): Promise<void> {
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const { protocol, head } = await readProtocol(socket);
    this.#log.debug('connection protocol', { route: this.#label, source, protocol });
    if (protocol === 'http1') {
      await proxyHttp1(socket, head, {
        destinationFor: (request) => {
          const destination = this.#ports.destinationFor(request);
          routed?.(destination);
          return destination;
        },
        connect: (destination) => this.#connect(destination, source),
        onRequest: (method, path, via) => this.#log.debug('request', { route: this.#label, method, path, via: via ?? 'app' }),
        onProblem: (message) => this.#log.debug('HTTP/1 exchange failed', { route: this.#label, source, error: message }),
      });
    } else if (protocol === 'h2c') {
      const upstreams = new Upstreams((destination) => this.#connect(destination, source), routed);
      socket.once('close', () => upstreams.close());
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

  #stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const upstreams = this.#upstreams.get(stream.session as Http2Session);
    if (upstreams === undefined) {
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    // The same match as HTTP/1: `:method` and `:path` (the request target) with the other headers.
    const destination = this.#ports.destinationFor({ method: String(headers[':method'] ?? ''), target: String(headers[':path'] ?? ''), headers: pairsFromObject(headers) });
    this.#log.debug('stream', { route: this.#label, method: headers[':method'], path: headers[':path'], via: destination ?? 'app' });
    upstreams.routed?.(destination);
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
