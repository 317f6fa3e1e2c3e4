/**
 * The outbound fast path (manager.proto, "Outbound fast path"): a listener on the pod's loopback
 * where clients park framed streams through port-forwards, ahead of need. When a TCP flow starts,
 * the client sends a header naming its session and the destination on one of them; we dial as an
 * Outbound call would (outbound.ts), answer, and splice the stream to the connection. The bytes
 * then cross one port-forward and no gRPC.
 *
 * An idle stream waits without a timeout: clients park them before they need them, and the
 * port-forward's own idle timeout (the kubelet's, 4 h by default) ends the forgotten ones.
 */
import { DIAL_PORT_PARKED } from '@telepresence-ts/core/contracts';
import { DirectStream, parseHeader, type DirectHello } from '@telepresence-ts/core/direct-stream';
import { splice, spliceSocketOptions } from '@telepresence-ts/core/splice';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/log.js';
import { CLOSE_PREFIX, netDial, parseDestination, startTcpDial, type Destination, type TcpDialOptions } from './outbound.js';

/**
 * Every client parks a few streams (four); this many waiting at once is a runaway client or
 * someone else's, and further ones are closed rather than held.
 */
export const MAX_WAITING_STREAMS = 1024;

/** DIAL_PORT_PARKED as a frame: its 4-byte length, then the JSON. */
const PARKED_FRAME = ((): Buffer => {
  const body = Buffer.from(DIAL_PORT_PARKED, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
})();

/** The manager's answer to a header. */
export type DialAnswer = { readonly ok: true } | { readonly error: string };

export interface DialPortOptions extends TcpDialOptions {
  readonly log: Logger;
  /** Throws unless `sessionId` is a client's live session (State.requireClient). */
  readonly requireClient: (sessionId: string) => void;
  /** The pod's loopback, which a port-forward reaches and other pods do not. */
  readonly host?: string;
  /** MANAGER_DIAL_PORT in the cluster; 0 (any) in tests. */
  readonly port: number;
  readonly maxWaiting?: number;
}

export class DialPort {
  readonly #server: Server;
  readonly #opts: DialPortOptions;
  readonly #port: number;
  /** Every accepted socket, so that close() drops them all. */
  readonly #sockets = new Set<Socket>();
  /** Streams still waiting for their header. */
  #waiting = 0;
  #active = 0;

  private constructor(server: Server, opts: DialPortOptions) {
    this.#server = server;
    this.#opts = opts;
    this.#port = (server.address() as AddressInfo).port;
  }

  static async start(opts: DialPortOptions): Promise<DialPort> {
    const server = createServer({ allowHalfOpen: true, ...spliceSocketOptions });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const dial = new DialPort(server, opts);
    server.on('connection', (socket: Socket) => dial.#accept(socket));
    server.on('error', (err) => opts.log.warn('dial port failed', { error: err.message }));
    return dial;
  }

  /** The port clients port-forward to (ClusterInfo.dial_port). */
  get port(): number {
    return this.#port;
  }

  /** Streams parked now, waiting for a header. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Connections spliced now. */
  get active(): number {
    return this.#active;
  }

  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    if (this.#waiting >= (this.#opts.maxWaiting ?? MAX_WAITING_STREAMS)) {
      this.#opts.log.warn('too many parked outbound streams; closing a new one', { waiting: this.#waiting });
      socket.destroy();
      return;
    }
    this.#waiting++;
    socket.write(PARKED_FRAME);
    const stream = new DirectStream(socket);
    // Errors of a waiting stream are its end; once spliced, the splice reports them.
    stream.on('error', () => undefined);
    stream.header.then(
      (bytes) => {
        this.#waiting--;
        this.#serve(socket, stream, bytes);
      },
      (err: unknown) => {
        this.#waiting--;
        this.#opts.log.debug('a parked outbound stream closed', { error: (err as Error).message });
        stream.destroy();
      },
    );
  }

  #serve(raw: Socket, stream: DirectStream, bytes: Buffer): void {
    const { log } = this.#opts;
    const refuse = (error: string): void => {
      log.debug('outbound stream refused', { error });
      answer(stream, { error });
      // The answer, then the end of the whole stream: nothing more goes either way.
      raw.end();
    };
    let header: Record<string, unknown>;
    try {
      header = parseHeader(bytes);
    } catch (err: unknown) {
      return refuse(`${CLOSE_PREFIX.invalid} ${(err as Error).message}`);
    }
    const { session, protocol, destination } = header;
    if (typeof session !== 'string') return refuse(`${CLOSE_PREFIX.invalid} the header names no session`);
    try {
      this.#opts.requireClient(session);
    } catch (err: unknown) {
      return refuse(`${CLOSE_PREFIX.session} ${err instanceof Error ? err.message : String(err)}`);
    }
    if (protocol !== 'tcp') return refuse(`${CLOSE_PREFIX.invalid} protocol ${JSON.stringify(protocol)} is not tcp`);
    const dest = typeof destination === 'string' ? parseDestination(destination) : undefined;
    if (dest === undefined || typeof destination !== 'string') {
      return refuse(`${CLOSE_PREFIX.invalid} destination ${JSON.stringify(destination)} is not ip:port or [ipv6]:port`);
    }
    // The client may go away while we dial: then the dial is abandoned.
    const gone = (): void => {
      socket.destroy();
    };
    stream.once('close', gone);
    const socket = startTcpDial(dest, destination, { connectTimeoutMs: this.#opts.connectTimeoutMs, dialTcp: this.#opts.dialTcp ?? spliceDial }, (error) => {
      stream.off('close', gone);
      if (error !== undefined) {
        if (!stream.destroyed) refuse(error);
        return;
      }
      answer(stream, { ok: true });
      // A stream that breaks (the client's connection was reset, the port-forward or the daemon
      // went away) cuts the connection: the destination gets a reset rather than a FIN, as with
      // Outbound calls. Before the splice's own listener, which would only close the socket.
      stream.once('close', () => {
        if (stream.errored !== null && !socket.destroyed) socket.resetAndDestroy();
      });
      this.#active++;
      log.debug('outbound flow opened', { destination, active: this.#active });
      void splice(stream, socket).then((result) => {
        this.#active--;
        log.debug('outbound flow ended', {
          destination,
          out: result.aToB,
          in: result.bToA,
          active: this.#active,
          ...(result.error !== undefined ? { error: result.error.message } : {}),
        });
      });
    });
  }

  /** Stops listening and drops every stream, parked or spliced. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

/** The real dial, with a socket made for a splice (see splice.ts). */
const spliceDial = (dest: Destination): Socket => netDial(dest, spliceSocketOptions);

/**
 * Writes the manager's answer as a header frame. `sendHeader` writes any JSON object; its type
 * names the headers of direct tunnels, whose module the agent shares.
 */
function answer(stream: DirectStream, value: DialAnswer): void {
  stream.sendHeader(value as unknown as DirectHello);
}
