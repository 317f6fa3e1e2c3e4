import { DirectStream, parseHeader, type DirectHandoff } from '@telepresence-ts/core/direct-stream';
import { spliceSocketOptions } from '@telepresence-ts/core/splice';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';

/** A client that connects and says nothing for this long is not one of ours. */
const HELLO_TIMEOUT_MS = 10_000;
/** Clients keep a few streams parked; more than this from one session is a runaway client. */
const MAX_PARKED_PER_SESSION = 16;

export interface DirectTunnelOptions {
  /** Where to listen; the pod's loopback, which a port-forward reaches and other pods do not. */
  readonly host?: string;
  readonly helloTimeoutMs?: number;
}

/**
 * The agent's end of direct tunnels (manager.proto, "Direct tunnels"): a listener on the pod's
 * loopback where clients park streams through a port-forward, each opened with a hello naming the
 * client's session, and from which the forwarder takes one per intercepted connection of that
 * session's intercepts. A stream is used once; the client parks a new one when it gets a handoff.
 */
export class DirectTunnels {
  readonly #server: Server;
  readonly #port: number;
  readonly #log: Logger;
  readonly #helloTimeoutMs: number;
  /** Parked streams by client session id, oldest first. */
  readonly #parked = new Map<string, Set<DirectStream>>();
  /** Every accepted socket, so that close() drops them all. */
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, port: number, log: Logger, helloTimeoutMs: number) {
    this.#server = server;
    this.#port = port;
    this.#log = log;
    this.#helloTimeoutMs = helloTimeoutMs;
  }

  static async start(log: Logger, options: DirectTunnelOptions = {}): Promise<DirectTunnels> {
    const server = createServer({ allowHalfOpen: true, ...spliceSocketOptions });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
    const tunnels = new DirectTunnels(server, port, log, options.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
    server.on('connection', (socket: Socket) => tunnels.#accept(socket));
    return tunnels;
  }

  /** The port clients port-forward to (AgentInfo.tunnel_port). */
  get port(): number {
    return this.#port;
  }

  /** How many streams `sessionId` has parked now. */
  parkedCount(sessionId: string): number {
    return this.#parked.get(sessionId)?.size ?? 0;
  }

  /**
   * One of `sessionId`'s parked streams, told about the connection it now carries; undefined when
   * the session has none parked (the caller then tunnels through the manager).
   */
  take(sessionId: string, handoff: DirectHandoff): Duplex | undefined {
    const parked = this.#parked.get(sessionId);
    if (parked === undefined) return undefined;
    for (const stream of parked) {
      parked.delete(stream);
      if (stream.destroyed) continue;
      if (parked.size === 0) this.#parked.delete(sessionId);
      stream.sendHeader(handoff);
      return stream;
    }
    this.#parked.delete(sessionId);
    return undefined;
  }

  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    const stream = new DirectStream(socket);
    // Errors of a parked stream are its end; once taken, the splice reports them.
    stream.on('error', () => undefined);
    const timer = setTimeout(() => stream.destroy(), this.#helloTimeoutMs);
    stream.header.then(
      (bytes) => {
        clearTimeout(timer);
        let session: unknown;
        try {
          session = parseHeader(bytes).session;
        } catch (err: unknown) {
          this.#log.warn('refusing a direct tunnel', { error: (err as Error).message });
          stream.destroy();
          return;
        }
        if (typeof session !== 'string' || session === '') {
          this.#log.warn('refusing a direct tunnel without a session');
          stream.destroy();
          return;
        }
        this.#park(session, stream);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.#log.debug('a direct tunnel ended before its hello', { error: (err as Error).message });
        stream.destroy();
      },
    );
  }

  #park(session: string, stream: DirectStream): void {
    let parked = this.#parked.get(session);
    if (parked === undefined) {
      parked = new Set();
      this.#parked.set(session, parked);
    }
    if (parked.size >= MAX_PARKED_PER_SESSION) {
      this.#log.warn('too many parked direct tunnels; closing the new one', { session, parked: parked.size });
      stream.destroy();
      return;
    }
    parked.add(stream);
    const set = parked;
    stream.once('close', () => {
      set.delete(stream);
      if (set.size === 0 && this.#parked.get(session) === set) this.#parked.delete(session);
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#parked.clear();
    await closed;
  }
}
