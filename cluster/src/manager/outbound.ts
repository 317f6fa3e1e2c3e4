/**
 * Outbound streams: each is one TCP connection or UDP flow that a workstation sent into its TUN
 * device, which the manager dials from inside the cluster and relays (manager.proto, "Outbound
 * access"). This module owns the sockets; the gRPC edge (service.ts) hands it each call.
 *
 * What the manager sends, in order:
 * - when the first message is not a usable `open`: `close` {"invalid: ..."} or
 *   {"session: ..."}, and the end of the stream;
 * - when the dial fails: `close` {"refused: <destination>"} (the destination answered with a
 *   reset: nothing listens there) or {"unreachable: <CODE> <destination>"} (no answer, no route,
 *   or no connection within CONNECT_TIMEOUT_MS: "unreachable: ETIMEDOUT ..."), and the end;
 * - when the dial succeeds: one `open` {connection_id, protocol, destination}, echoing the
 *   client's, before any data, so that the client knows the destination accepted;
 * - then `data` as it arrives; for TCP, `close` {""} when the destination half-closes, and
 *   `close` {"failed: <CODE>"} and the end when the connection breaks.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { TunnelMessage, TunnelOpen } from '@telepresence-ts/proto/manager/v1';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, isIP, type Socket } from 'node:net';
import type { Logger } from '../shared/log.js';

/** An Outbound call as the fast codec gives it (proto/src/tunnel.ts): `data` is a view, not a copy. */
export type OutboundCall = ServerDuplexStream<TunnelMessage, TunnelMessage>;

/**
 * How long a TCP dial may take. The kernel would try for about two minutes; the workstation's
 * application has long given up by then, and a client that learns early can answer its TCP
 * stack with a reset instead of leaving the connection hanging.
 */
export const CONNECT_TIMEOUT_MS = 10_000;
/**
 * How long a UDP flow lives without a datagram either way. UDP has no end, so without a limit
 * every flow a workstation ever started would hold a socket here; 60 s is what Linux's conntrack
 * gives an unanswered UDP flow's successor (nf_conntrack_udp_timeout_stream is 120 s, the plain
 * timeout 30 s), and longer than any DNS or QUIC exchange pauses.
 */
export const UDP_IDLE_MS = 60_000;

/** The prefixes of `close.error` (see the header). A client branches on these, never on the rest. */
export const CLOSE_PREFIX = {
  invalid: 'invalid:',
  session: 'session:',
  refused: 'refused:',
  unreachable: 'unreachable:',
  failed: 'failed:',
} as const;

export interface OutboundOptions {
  readonly log: Logger;
  /** Throws unless `sessionId` is a client's live session (State.requireClient). */
  readonly requireClient: (sessionId: string) => void;
  readonly connectTimeoutMs?: number;
  readonly udpIdleMs?: number;
  /** Starts a TCP dial (net.connect); tests pass one that never completes. */
  readonly dialTcp?: (dest: Destination) => Socket;
}

/**
 * The real dial. allowHalfOpen: the destination's FIN is passed on as `close` while the client
 * may still send; our own FIN follows the client's `close`.
 */
export const netDial = (dest: Destination, extra: { readonly highWaterMark?: number } = {}): Socket =>
  connect({ host: dest.host, port: dest.port, noDelay: true, allowHalfOpen: true, ...extra });

export interface Destination {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** "10.96.0.1:443" or "[fd00::1]:53": an address, never a name (the client resolved it). */
export function parseDestination(text: string): Destination | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const family = isIP(host);
  const port = Number(m[3]);
  // The brackets are for IPv6 only, and IPv6 needs them.
  if (family === 0 || (family === 6) !== (m[1] !== undefined) || !(port >= 1 && port <= 65535)) return undefined;
  return { host, port, family: family as 4 | 6 };
}

/** A Node socket error's code ("ECONNREFUSED"), or "ERROR" when it has none. */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : 'ERROR';
}

/** What a failed dial is called on the wire. */
export function dialError(err: unknown, destination: string): string {
  const code = errorCode(err);
  return code === 'ECONNREFUSED' ? `${CLOSE_PREFIX.refused} ${destination}` : `${CLOSE_PREFIX.unreachable} ${code} ${destination}`;
}

export interface TcpDialOptions {
  readonly connectTimeoutMs?: number | undefined;
  readonly dialTcp?: ((dest: Destination) => Socket) | undefined;
}

/**
 * Starts a TCP dial to `dest` (`destination` is its text, for the wire) and calls `done` once:
 * with undefined when the socket connected, or with the wire error ("refused: ..." or
 * "unreachable: <CODE> ...") when it failed or took longer than the connect timeout (the socket
 * is destroyed then). Shared by Outbound calls and the dial port (dial-port.ts). Errors after the
 * connect are the caller's to handle.
 */
export function startTcpDial(dest: Destination, destination: string, opts: TcpDialOptions, done: (error: string | undefined) => void): Socket {
  const socket = opts.dialTcp !== undefined ? opts.dialTcp(dest) : netDial(dest);
  let answered = false;
  const answer = (error: string | undefined): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    socket.off('error', onError);
    socket.off('close', onClose);
    done(error);
  };
  const timer = setTimeout(() => {
    answer(`${CLOSE_PREFIX.unreachable} ETIMEDOUT ${destination}`);
    socket.destroy();
  }, opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  const onError = (err: Error): void => answer(dialError(err, destination));
  // Destroyed by the caller before it connected: nobody waits for the answer any more.
  const onClose = (): void => answer(`${CLOSE_PREFIX.unreachable} ECONNABORTED ${destination}`);
  socket.once('connect', () => answer(undefined));
  socket.on('error', onError);
  socket.once('close', onClose);
  return socket;
}

/** Describes a failure of a connected socket on the wire: "failed: ECONNRESET". */
export function connectionFailure(err: unknown): string {
  return `${CLOSE_PREFIX.failed} ${errorCode(err)}`;
}

/** The `open` that tells the client its dial succeeded: its own, without the session. */
const echo = (open: TunnelOpen): TunnelOpen => ({ sessionId: '', connectionId: open.connectionId, interceptId: '', protocol: open.protocol, destination: open.destination });

/** The manager's outbound flows; it counts them for the debug log. */
export class OutboundFlows {
  readonly #opts: OutboundOptions;
  #active = 0;

  constructor(opts: OutboundOptions) {
    this.#opts = opts;
  }

  /** How many flows are open now. */
  get active(): number {
    return this.#active;
  }

  /** Serves one Outbound call from its first message to its end. */
  handle(call: OutboundCall): void {
    // Until the first message: a client that goes away sends nothing more.
    const early = (): void => {
      if (!call.writableEnded) call.end();
    };
    call.once('end', early);
    call.once('data', (first: TunnelMessage) => {
      // Pause at once: in flowing mode, messages without a 'data' listener would be dropped; the
      // ones the client sends before the dial completes wait in the stream's buffer.
      call.pause();
      call.off('end', early);
      const open = first.open;
      const reject = (error: string): void => {
        this.#opts.log.debug('outbound stream refused', { error });
        call.write({ close: { error } });
        call.end();
      };
      if (open === undefined) return reject(`${CLOSE_PREFIX.invalid} the first message must be open`);
      try {
        this.#opts.requireClient(open.sessionId);
      } catch (err: unknown) {
        return reject(`${CLOSE_PREFIX.session} ${err instanceof Error ? err.message : String(err)}`);
      }
      const dest = parseDestination(open.destination);
      if (dest === undefined) return reject(`${CLOSE_PREFIX.invalid} destination ${JSON.stringify(open.destination)} is not ip:port or [ipv6]:port`);
      if (open.protocol === 'tcp') this.#tcp(call, open, dest);
      else if (open.protocol === 'udp') this.#udp(call, open, dest);
      else reject(`${CLOSE_PREFIX.invalid} protocol ${JSON.stringify(open.protocol)} is not tcp or udp`);
    });
  }

  /** Counts a flow in; the returned function counts it out (once). */
  #track(open: TunnelOpen): () => void {
    this.#active++;
    const { log } = this.#opts;
    log.debug('outbound flow opened', { connectionId: open.connectionId, protocol: open.protocol, destination: open.destination, active: this.#active });
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#active--;
      log.debug('outbound flow ended', { connectionId: open.connectionId, active: this.#active });
    };
  }

  #tcp(call: OutboundCall, open: TunnelOpen, dest: Destination): void {
    const untrack = this.#track(open);
    let connected = false;
    let finished = false;
    let callGone = false;
    let remoteEnded = false;

    /**
     * Ends the flow: a last `close` when `error` is given (and the call is still there), then
     * both ends. `reset`: the destination gets a reset rather than a FIN, because the flow was
     * cut rather than closed.
     */
    const finish = (error?: string, reset = false): void => {
      if (finished) return;
      finished = true;
      if (!callGone && !call.writableEnded) {
        if (error !== undefined) call.write({ close: { error } });
        call.end();
      }
      if (reset && connected && !socket.destroyed) socket.resetAndDestroy();
      else socket.destroy();
      untrack();
    };
    const callEnded = (): void => {
      callGone = true;
      finish(undefined, true);
    };
    call.once('cancelled', callEnded);
    call.once('close', () => {
      // A call that closes before the relay finished was cut (the client's side went away).
      if (!finished) callEnded();
    });

    const socket = startTcpDial(dest, open.destination, this.#opts, (error) => {
      if (error !== undefined) {
        finish(error);
        return;
      }
      connected = true;
      call.write({ open: echo(open) });
      let clientEnded = false;
      const endFromClient = (): void => {
        if (clientEnded) return;
        clientEnded = true;
        socket.end();
      };
      call.on('data', (m: TunnelMessage) => {
        if (finished) return;
        if (m.data !== undefined) {
          if (clientEnded || m.data.length === 0) return;
          if (!socket.write(m.data)) {
            call.pause();
            socket.once('drain', () => call.resume());
          }
        } else if (m.close !== undefined) {
          if (m.close.error === '') return endFromClient();
          // The client's side failed: its connection was reset, so ours is too.
          finish(undefined, true);
        }
        // A second `open` means nothing on an open stream; it is ignored.
      });
      // A client that ends its side of the call without a `close` has half-closed as well.
      // (grpc-js also ends the readable side of a call that the client cancels, a moment before
      // it says 'cancelled': the destination then sees a FIN before its socket is destroyed.)
      call.on('end', endFromClient);
      socket.on('data', (chunk: Buffer) => {
        if (!call.write({ data: chunk })) {
          socket.pause();
          call.once('drain', () => socket.resume());
        }
      });
      call.resume();
    });
    socket.on('end', () => {
      remoteEnded = true;
      if (!callGone && !call.writableEnded) call.write({ close: { error: '' } });
    });
    // Errors before the connect are the dial's answer (above).
    socket.on('error', (err) => {
      if (connected) finish(connectionFailure(err));
    });
    // Both ways done (the destination's FIN was passed on, ours was sent): the flow is over. A
    // close without either means the socket was destroyed, which only `finish` does.
    socket.on('close', () => finish(remoteEnded ? undefined : ''));
  }

  #udp(call: OutboundCall, open: TunnelOpen, dest: Destination): void {
    const untrack = this.#track(open);
    const socket: UdpSocket = createSocket(dest.family === 6 ? 'udp6' : 'udp4');
    const idleMs = this.#opts.udpIdleMs ?? UDP_IDLE_MS;
    let finished = false;
    let callGone = false;
    let connected = false;
    let lastActivity = Date.now();
    let idleTimer: NodeJS.Timeout | undefined;
    const { log } = this.#opts;

    const finish = (error?: string): void => {
      if (finished) return;
      finished = true;
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      if (!callGone && !call.writableEnded) {
        if (error !== undefined) call.write({ close: { error } });
        call.end();
      }
      socket.close();
      untrack();
    };
    // One timer per flow rather than one per datagram: when it fires early, it waits the rest.
    const armIdle = (ms: number): void => {
      idleTimer = setTimeout(() => {
        const idle = Date.now() - lastActivity;
        if (idle >= idleMs) finish();
        else armIdle(idleMs - idle);
      }, ms);
    };
    const callEnded = (): void => {
      callGone = true;
      finish();
    };
    call.once('cancelled', callEnded);
    call.once('close', () => {
      if (!finished) callEnded();
    });

    socket.on('error', (err) => {
      if (!connected) return finish(dialError(err, open.destination));
      // An ICMP port unreachable for an earlier datagram: as over the Internet, that datagram is
      // lost and the flow goes on (the application retries or times out by itself).
      if (errorCode(err) === 'ECONNREFUSED') return log.debug('outbound datagram refused', { connectionId: open.connectionId });
      finish(`${CLOSE_PREFIX.failed} ${errorCode(err)}`);
    });
    socket.connect(dest.port, dest.host, () => {
      connected = true;
      call.write({ open: echo(open) });
      armIdle(idleMs);
      socket.on('message', (msg: Buffer) => {
        lastActivity = Date.now();
        // A client that does not read fast enough loses datagrams, as a full socket buffer would
        // drop them, rather than the manager buffering without bound.
        if (call.writableNeedDrain) return;
        call.write({ data: msg });
      });
      call.on('data', (m: TunnelMessage) => {
        if (finished) return;
        if (m.data !== undefined) {
          lastActivity = Date.now();
          socket.send(m.data, (err) => {
            if (err !== null) log.debug('outbound datagram not sent', { connectionId: open.connectionId, error: err.message });
          });
        } else if (m.close !== undefined) {
          finish();
        }
      });
      call.on('end', () => finish());
      call.resume();
    });
  }
}
