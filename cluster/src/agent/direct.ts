import { DirectStream, parseHeader, type DirectHandoff } from '@telepresence-ts/core/direct-stream';
import { spliceSocketOptions } from '@telepresence-ts/core/splice';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';

/** A client that connects and says nothing for this long is not one of ours. */
const HELLO_TIMEOUT_MS = 10_000;
/**
 * Clients keep a few streams parked, more while many of their connections are open (up to this
 * many); more than this from one session is a runaway client.
 */
export const MAX_PARKED_PER_SESSION = 16;
/**
 * How long a connection waits for a stream of its owner's when none is parked but the owner has
 * streams here (parked before and now carrying other connections): the owner parks a new one for
 * each taken, through a port-forward that opens in milliseconds to tens of them when the machine
 * is busy. The relay costs more than such a wait, for the connection's whole life.
 */
export const TAKE_WAIT_MS = 1000;
/**
 * A wait longer than this means that streams come slower than connections do (each stream is a
 * port-forward of its own, which a busy machine opens a few dozen times a second): waiting then
 * only queues connections behind each other, while the relay, which opens a gRPC stream on a
 * connection already there, takes them at once. For SLOW_FOR_MS after such a wait, connections
 * of that session that find nothing parked go to the relay without waiting.
 */
export const SLOW_WAIT_MS = 100;
export const SLOW_FOR_MS = 2000;

export interface DirectTunnelOptions {
  /** Where to listen; the pod's loopback, which a port-forward reaches and other pods do not. */
  readonly host?: string;
  readonly helloTimeoutMs?: number;
  readonly takeWaitMs?: number;
  readonly slowWaitMs?: number;
  readonly slowForMs?: number;
}

/** A connection waiting for its owner's next parked stream (see TAKE_WAIT_MS). */
interface Waiter {
  readonly handoff: DirectHandoff;
  readonly stream: LateStream;
  readonly timer: NodeJS.Timeout;
  /** When it began to wait (Date.now()). */
  readonly since: number;
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
  readonly #takeWaitMs: number;
  readonly #slowWaitMs: number;
  readonly #slowForMs: number;
  /** Until when (Date.now()) connections of a session do not wait (see SLOW_WAIT_MS). */
  readonly #slowUntil = new Map<string, number>();
  /** Parked streams by client session id, oldest first. */
  readonly #parked = new Map<string, Set<DirectStream>>();
  /** Streams of each session that said hello and are still open, parked or carrying a connection. */
  readonly #live = new Map<string, number>();
  /** Connections waiting for a stream, by session, oldest first. */
  readonly #waiters = new Map<string, Waiter[]>();
  /** Every accepted socket, so that close() drops them all. */
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, port: number, log: Logger, options: DirectTunnelOptions) {
    this.#server = server;
    this.#port = port;
    this.#log = log;
    this.#helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
    this.#takeWaitMs = options.takeWaitMs ?? TAKE_WAIT_MS;
    this.#slowWaitMs = options.slowWaitMs ?? SLOW_WAIT_MS;
    this.#slowForMs = options.slowForMs ?? SLOW_FOR_MS;
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
    const tunnels = new DirectTunnels(server, port, log, options);
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
   * the session has none here (the caller then tunnels through the manager).
   *
   * When none is parked but the session has streams here that carry other connections, its client
   * is parking new ones: the connection then gets a stream that waits for the next of them, up to
   * TAKE_WAIT_MS, and turns into `relay()` when none comes in time (or is destroyed, when `relay`
   * is not given or gives nothing). Without the wait, a burst of connections beyond the streams
   * parked went to the relay, and stayed there for as long as they lived. Not while streams come
   * slower than connections (SLOW_WAIT_MS): the relay then takes what finds none parked.
   */
  take(sessionId: string, handoff: DirectHandoff, relay?: () => Duplex | undefined): Duplex | undefined {
    const parked = this.#parked.get(sessionId);
    for (const stream of parked ?? []) {
      parked?.delete(stream);
      if (stream.destroyed) continue;
      if (parked?.size === 0) this.#parked.delete(sessionId);
      stream.sendHeader(handoff);
      return stream;
    }
    this.#parked.delete(sessionId);
    if ((this.#live.get(sessionId) ?? 0) === 0 || this.#takeWaitMs <= 0) return undefined;
    const slowUntil = this.#slowUntil.get(sessionId);
    if (slowUntil !== undefined) {
      if (Date.now() < slowUntil) return undefined;
      this.#slowUntil.delete(sessionId);
    }
    return this.#wait(sessionId, handoff, relay);
  }

  #wait(sessionId: string, handoff: DirectHandoff, relay: (() => Duplex | undefined) | undefined): Duplex {
    const late = new LateStream();
    const waiters = this.#waiters.get(sessionId) ?? [];
    this.#waiters.set(sessionId, waiters);
    const timer = setTimeout(() => {
      this.#dropWaiter(sessionId, waiter);
      this.#waited(sessionId, this.#takeWaitMs);
      let peer: Duplex | undefined;
      try {
        peer = relay?.();
      } catch (err: unknown) {
        this.#log.warn('cannot open a tunnel', { interceptId: handoff.interceptId, error: (err as Error).message });
      }
      if (peer === undefined) {
        late.destroy(new Error('no direct tunnel came in time and no relay could be opened'));
        return;
      }
      this.#log.debug('no direct tunnel came in time; relaying the connection', { interceptId: handoff.interceptId, source: handoff.source });
      late.attach(peer);
    }, this.#takeWaitMs);
    const waiter: Waiter = { handoff, stream: late, timer, since: Date.now() };
    waiters.push(waiter);
    // The connection went away while it waited: it needs no stream any more.
    late.once('close', () => {
      clearTimeout(timer);
      this.#dropWaiter(sessionId, waiter);
    });
    return late;
  }

  #dropWaiter(sessionId: string, waiter: Waiter): void {
    const waiters = this.#waiters.get(sessionId);
    if (waiters === undefined) return;
    const i = waiters.indexOf(waiter);
    if (i >= 0) waiters.splice(i, 1);
    if (waiters.length === 0) this.#waiters.delete(sessionId);
  }

  /** A connection of `sessionId` waited `ms` for a stream (or gave up after that long). */
  #waited(sessionId: string, ms: number): void {
    if (ms > this.#slowWaitMs) this.#slowUntil.set(sessionId, Date.now() + this.#slowForMs);
  }

  /** Connections waiting for a stream of `sessionId` now (for tests). */
  waitingCount(sessionId: string): number {
    return this.#waiters.get(sessionId)?.length ?? 0;
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
    this.#live.set(session, (this.#live.get(session) ?? 0) + 1);
    stream.once('close', () => {
      const n = (this.#live.get(session) ?? 1) - 1;
      if (n > 0) this.#live.set(session, n);
      else this.#live.delete(session);
    });
    // A connection waiting for a stream of this session takes it at once.
    const waiter = this.#waiters.get(session)?.[0];
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      this.#dropWaiter(session, waiter);
      this.#waited(session, Date.now() - waiter.since);
      stream.sendHeader(waiter.handoff);
      waiter.stream.attach(stream);
      return;
    }
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
    for (const waiters of this.#waiters.values()) for (const w of [...waiters]) w.stream.destroy();
    this.#parked.clear();
    await closed;
  }
}

/**
 * The peer of a connection before it is known: what the connection sends is held (its writer
 * waits, so backpressure holds too) until `attach` gives the stream it goes to, and from then on
 * everything passes both ways, ends and failures included. Destroying it destroys the attached
 * stream.
 */
export class LateStream extends Duplex {
  #peer: Duplex | undefined;
  /** The first write (or the end) made before the peer came, sent once it does. */
  #held: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true });
  }

  attach(peer: Duplex): void {
    if (this.destroyed) {
      peer.destroy();
      return;
    }
    this.#peer = peer;
    peer.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) peer.pause();
    });
    peer.on('end', () => this.push(null));
    peer.on('error', (err: Error) => this.destroy(err));
    peer.on('close', () => {
      // A peer that closed before both of its directions ended failed the connection.
      if (!(peer.readableEnded && peer.writableFinished)) this.destroy(new Error('the stream closed before the connection ended'));
    });
    const held = this.#held;
    this.#held = undefined;
    held?.();
  }

  override _read(): void {
    this.#peer?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const send = (): void => {
      if (this.#peer?.write(chunk) === false) this.#peer.once('drain', () => callback());
      else callback();
    };
    if (this.#peer !== undefined) send();
    else this.#held = send;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const end = (): void => {
      this.#peer?.end(() => callback());
    };
    if (this.#peer !== undefined) end();
    else this.#held = end;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#peer?.destroy();
    this.#held = undefined;
    callback(error);
  }
}
