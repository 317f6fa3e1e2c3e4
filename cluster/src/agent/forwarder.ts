import { ROUTING_PROBE_REPLY, ROUTING_PROBE_REQUEST } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import { HttpRouter } from './http-router.js';
import { matchRequest, type ForwardRoute, type PersonalIntercept } from './routes.js';
import { READS_OBSERVED, splice, spliceSocketOptions, type SpliceObserver } from '@telepresence-ts/core/splice';

/** One accepted connection, as a tap is told of it. */
export interface TappedConnection {
  readonly route: ForwardRoute;
  /** The caller, "ip:port". */
  readonly source: string;
  /** Unix milliseconds when it was accepted. */
  readonly startedAt: number;
  /**
   * The global intercept (or replace) that takes the whole connection, or undefined: the app
   * answers it, or, when `routed`, the personal intercepts' router chooses per request.
   */
  readonly interceptId: string | undefined;
  readonly routed: boolean;
}

/** How a tapped connection ended. */
export interface TapSummary {
  /** Bytes from the caller, and to it. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  readonly error: string | undefined;
}

/**
 * Something that sees a connection's bytes as they pass (a wiretap's copy, the traffic report).
 * Pieces are valid only during the call (copy what you keep); every method runs on the data path,
 * so it must return at once and never throw.
 */
export interface ConnectionTap {
  fromCaller?(piece: Uint8Array): void;
  toCaller?(piece: Uint8Array): void;
  /** On a routed connection: where the router sent each request, in order (undefined: the app). */
  routedTo?(interceptId: string | undefined): void;
  closed?(summary: TapSummary): void;
}

/** Where a connection (or, on a port with personal intercepts, a request) is sent. */
export interface ForwarderPorts {
  /** The id of the global intercept that takes new connections on `route`, if one does now. */
  readonly interceptFor: (route: ForwardRoute) => string | undefined;
  /** The personal (HTTP-filter) intercepts of `route` now, in matching order (see `personalIntercepts`). */
  readonly personalFor: (route: ForwardRoute) => readonly PersonalIntercept[];
  /**
   * A tunnel to the intercept's owner for one connection from `source` ("ip:port"), or undefined
   * when there is no manager session to open one on (the connection then goes to the app).
   */
  readonly openTunnel: (interceptId: string, source: string, containerPort: number) => Duplex | undefined;
  /** What sees this connection's bytes (none for most: taps are for engaged routes only). */
  readonly tapsFor?: (connection: TappedConnection) => readonly ConnectionTap[];
  /** A connection to the app's port (connecting; writes are buffered until it is). */
  readonly dialApp: (port: number) => Duplex;
  /**
   * True for a connection from the traffic-manager's pod (`address` as `unmappedAddress` gives
   * it): a routing probe when it starts with `ROUTING_PROBE_REQUEST`, which the agent answers
   * with `ROUTING_PROBE_REPLY` and closes; otherwise a workstation's outbound flow, handled as
   * any other connection.
   */
  readonly isRoutingProbe: (address: string) => boolean;
}

/** `address` without the IPv4-mapped prefix that a dual-stack listener gives IPv4 peers (`::ffff:10.0.0.5`). */
export function unmappedAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

export interface ForwarderOptions {
  /** Address to listen on; undefined: every interface (IPv6 and IPv4 where the pod has both). */
  readonly host?: string | undefined;
  /** The port actually bound for a route; tests pass 0 to get a free one. */
  readonly bindPort?: (route: ForwardRoute) => number;
}

/**
 * How long a connection from the manager's pod may stay silent before it is taken for an
 * outbound flow rather than a routing probe: a probe writes its request as it connects, which
 * arrives within a millisecond or two over the pod network.
 */
export const PROBE_SCREEN_MS = 25;

/** Connects to the app on the pod's loopback, which the init container's iptables rule never redirects. */
export function dialLocalApp(port: number): Duplex {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...spliceSocketOptions });
  socket.setNoDelay(true);
  return socket;
}

interface Listener {
  readonly route: ForwardRoute;
  readonly server: Server;
  readonly port: number;
}

/**
 * The traffic-agent's data path: one TCP listener per route (an intercepted connection of the
 * agent configuration); each accepted connection is spliced either to a tunnel to the owning
 * client, when a global intercept takes the route at that moment, or to the app, unchanged.
 * When the route has personal intercepts instead, the connection goes to the route's
 * `HttpRouter`, which chooses per request (docs/personal-intercepts.md).
 *
 * The choice between those is made per connection at accept time: a connection keeps its mode for
 * its whole life, so an intercept created or removed mid-connection affects only later
 * connections (and, in the router, later requests). Passthrough depends on nothing but the app and
 * costs a splice: it works while the manager is unreachable.
 */
export class Forwarder {
  readonly #listeners: Listener[];
  readonly #connections = new Set<Socket>();
  /** One per route that has had personal intercepts, made when first needed. */
  readonly #routers = new Map<ForwardRoute, HttpRouter>();
  readonly #ports: ForwarderPorts;
  readonly #log: Logger;

  private constructor(listeners: Listener[], ports: ForwarderPorts, log: Logger) {
    this.#listeners = listeners;
    this.#ports = ports;
    this.#log = log;
  }

  /** Listens on every route; fails (and listens on none) when a port cannot be bound. */
  static async start(routes: readonly ForwardRoute[], ports: ForwarderPorts, log: Logger, options: ForwarderOptions = {}): Promise<Forwarder> {
    const listeners: Listener[] = [];
    const forwarder = new Forwarder(listeners, ports, log);
    try {
      for (const route of routes) {
        const server = createServer({ allowHalfOpen: true, ...spliceSocketOptions }, (socket) => forwarder.#accept(route, socket));
        const port = await listen(server, options.bindPort?.(route) ?? route.agentPort, options.host);
        listeners.push({ route, server, port });
        log.info('forwarding', { route: route.label, container: route.containerName, agentPort: port, containerPort: route.containerPort });
      }
    } catch (err: unknown) {
      await forwarder.close();
      const code = (err as NodeJS.ErrnoException).code;
      throw new TpError('config', 'agent-port-unavailable', `cannot listen on an agent port: ${(err as Error).message}`, {
        hint: code === 'EADDRINUSE' ? 'another container of the pod uses the port; regenerate the agent configuration' : undefined,
        cause: err,
      });
    }
    return forwarder;
  }

  /** The port bound for the route of `agentPort` (that port, unless the options chose another). */
  boundPort(agentPort: number): number | undefined {
    return this.#listeners.find((l) => l.route.agentPort === agentPort)?.port;
  }

  /** Connections currently open (accepted and not yet closed). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  #accept(route: ForwardRoute, socket: Socket): void {
    if (this.#ports.isRoutingProbe(unmappedAddress(socket.remoteAddress ?? ''))) {
      this.#screen(route, socket);
      return;
    }
    this.#dispatch(route, socket);
  }

  /**
   * A connection from the manager's pod: a routing probe if its first bytes are the probe's,
   * else an outbound flow of a workstation, passed on with those bytes. A probe sends them at
   * once, so a connection silent for PROBE_SCREEN_MS is no probe (a protocol where the server
   * speaks first): it goes on, having waited that long once.
   */
  #screen(route: ForwardRoute, socket: Socket): void {
    const expected = Buffer.from(ROUTING_PROBE_REQUEST, 'latin1');
    let head = Buffer.alloc(0);
    let done = false;
    const finish = (probe: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      if (probe) {
        this.#answerProbe(route, socket);
        return;
      }
      if (head.length > 0) {
        // Bytes of a client that has already ended cannot be put back; such a flow is dropped.
        if (socket.readableEnded) {
          socket.destroy();
          return;
        }
        socket.unshift(head);
      }
      this.#dispatch(route, socket);
    };
    const onReadable = (): void => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        head = Buffer.concat([head, chunk]);
        const n = Math.min(head.length, expected.length);
        if (!head.subarray(0, n).equals(expected.subarray(0, n))) return finish(false);
        if (head.length >= expected.length) return finish(head.length === expected.length);
      }
    };
    const timer = setTimeout(() => finish(false), PROBE_SCREEN_MS);
    socket.on('readable', onReadable);
    socket.once('error', () => finish(false));
  }

  #dispatch(route: ForwardRoute, socket: Socket): void {
    socket.setNoDelay(true);
    const source = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    let peer: Duplex | undefined;
    let via = 'app';
    const interceptId = this.#ports.interceptFor(route);
    const routed = interceptId === undefined && this.#ports.personalFor(route).length > 0;
    const taps = this.#ports.tapsFor?.({ route, source, startedAt: Date.now(), interceptId, routed }) ?? [];
    if (routed) {
      this.#route(route, socket, source, taps);
      return;
    }
    if (interceptId !== undefined) {
      try {
        peer = this.#ports.openTunnel(interceptId, source, route.containerPort);
        via = `intercept ${interceptId}`;
      } catch (err: unknown) {
        // Better the app than a refused connection: the intercept's owner just misses this one.
        this.#log.warn('cannot open a tunnel; passing the connection to the app', { interceptId, error: (err as Error).message });
      }
    }
    peer ??= this.#ports.dialApp(route.containerPort);
    this.#connections.add(socket);
    this.#log.debug('connection accepted', { route: route.label, source, via });
    const started = performance.now();
    void splice(socket, peer, spliceObserver(taps)).then((result) => {
      this.#connections.delete(socket);
      this.#log.debug('connection closed', { route: route.label, source, via, sent: result.aToB, received: result.bToA, error: result.error?.message });
      tapsClosed(taps, { bytesIn: result.aToB, bytesOut: result.bToA, durationMs: performance.now() - started, error: result.error?.message });
    });
  }

  /** Tells the traffic-manager that this connection reached the agent; nothing goes to the app or a workstation. */
  #answerProbe(route: ForwardRoute, socket: Socket): void {
    this.#log.debug('routing probe answered', { route: route.label, source: socket.remoteAddress });
    socket.on('error', () => socket.destroy());
    socket.resume();
    socket.end(ROUTING_PROBE_REPLY);
  }

  #route(route: ForwardRoute, socket: Socket, source: string, taps: readonly ConnectionTap[]): void {
    let router = this.#routers.get(route);
    if (router === undefined) {
      router = new HttpRouter(
        {
          destinationFor: (request) => this.#ports.interceptFor(route) ?? matchRequest(this.#ports.personalFor(route), request),
          openTunnel: (interceptId, from) => this.#ports.openTunnel(interceptId, from, route.containerPort),
          dialApp: () => this.#ports.dialApp(route.containerPort),
        },
        this.#log,
        route.label,
      );
      this.#routers.set(route, router);
    }
    this.#connections.add(socket);
    this.#log.debug('connection accepted', { route: route.label, source, via: 'http router' });
    const counted = taps.length > 0 ? tapSocket(socket, taps) : undefined;
    const started = performance.now();
    const routed = taps.some((tap) => tap.routedTo !== undefined)
      ? (interceptId: string | undefined): void => {
          for (const tap of taps) tap.routedTo?.(interceptId);
        }
      : undefined;
    void router.handle(socket, source, routed).then(() => {
      this.#connections.delete(socket);
      this.#log.debug('connection closed', { route: route.label, source, via: 'http router' });
      if (counted !== undefined) tapsClosed(taps, { bytesIn: counted.bytesIn, bytesOut: counted.bytesOut, durationMs: performance.now() - started, error: undefined });
    });
  }

  /** Stops listening and drops every open connection (the pod is stopping). */
  async close(): Promise<void> {
    const closing = this.#listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    for (const socket of this.#connections) socket.destroy();
    await Promise.all(closing);
  }
}

/** The splice observer that hands each piece to every tap; none when there are no taps. */
function spliceObserver(taps: readonly ConnectionTap[]): SpliceObserver {
  if (taps.length === 0) return {};
  return {
    aToB: (piece) => {
      for (const tap of taps) tap.fromCaller?.(piece);
    },
    bToA: (piece) => {
      for (const tap of taps) tap.toCaller?.(piece);
    },
  };
}

function tapsClosed(taps: readonly ConnectionTap[], summary: TapSummary): void {
  for (const tap of taps) tap.closed?.(summary);
}

/**
 * Taps a socket that something else reads and writes (the personal intercepts' router): its
 * received pieces as the stream takes them in, its sent ones as they are written. Bytes that a
 * reader puts back (`unshift`, as protocol sniffing does) are not seen twice. An h2c connection
 * is read by the HTTP/2 server from the socket's handle directly, past `push`: only what it
 * writes is seen.
 */
function tapSocket(socket: Socket, taps: readonly ConnectionTap[]): { bytesIn: number; bytesOut: number } {
  const counted = { bytesIn: 0, bytesOut: 0 };
  (socket as unknown as Record<symbol, unknown>)[READS_OBSERVED] = true;
  const push = socket.push.bind(socket);
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk instanceof Uint8Array) {
      counted.bytesIn += chunk.length;
      for (const tap of taps) tap.fromCaller?.(chunk);
    }
    return push(chunk, encoding);
  };
  const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
  socket.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
    const piece = typeof chunk === 'string' ? Buffer.from(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8') : chunk;
    if (piece instanceof Uint8Array) {
      counted.bytesOut += piece.length;
      for (const tap of taps) tap.toCaller?.(piece);
    }
    return write(chunk, ...rest);
  });
  return counted;
}

function listen(server: Server, port: number, host: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
