/**
 * The user daemon's end of the packet engine: every TCP or UDP flow that the engine accepts on the
 * TUN device arrives here as one connection on a Unix socket and leaves as one Manager.Outbound
 * stream, which the traffic-manager dials inside the cluster.
 *
 * Engine ↔ daemon, per connection (the Go engine implements the other end):
 *   1. The engine writes one header line, compact JSON and `\n`, at most 512 bytes:
 *      {"proto":"tcp"|"udp","src":"10.243.254.2:51234","dst":"10.96.0.10:80"} ("[fd00::1]:80").
 *   2. TCP: we answer one status byte once the manager has dialled: 0 connected (then raw bytes
 *      both ways, each direction ended by a half-close), 1 refused, 2 unreachable or failed (then
 *      we close). The engine completes the client's handshake only on 0, so a refused port looks
 *      refused (RST) at the workstation and an unreachable one times out or is unreachable.
 *   3. UDP: after the header, frames both ways: a 2-byte big-endian length and one datagram.
 *      Either side closing ends the flow.
 * Daemon ↔ manager: see "Outbound access" in manager.proto. The manager echoes `open` when its
 * dial worked, or answers `close {error}` ("refused: ..." or "unreachable: ...") and ends.
 *
 * A TCP flow takes the fast path instead when a stream is parked at the manager's dial port
 * (parked-streams.ts; manager.proto, "Outbound fast path"): the header names the destination, the
 * manager answers {"ok": true} or {"error": ...}, and the stream is spliced to the connection.
 * A parked stream that dies before it answers (the manager went away while it was parked) leaves
 * the flow to an Outbound call, as does having none parked.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { TpError } from '../errors.js';
import type { Logger } from '../daemon/logger.js';
import { parseHeader, type DirectHello, type DirectStream } from '../direct-stream.js';
import { splice, spliceSocketOptions } from '../splice.js';

/** The longest header line the engine may send, `\n` included. */
export const FLOW_HEADER_MAX_BYTES = 512;

/** The status byte of a TCP flow. */
export const FLOW_STATUS = { connected: 0, refused: 1, unreachable: 2 } as const;

/**
 * How long a TCP flow waits for the manager's dial. A client's own connect gives up after about
 * two minutes of SYN retries; we answer well before, and long enough for a cluster that is slow
 * to route (a Service without ready endpoints answers at once, with a refusal or a timeout).
 */
export const FLOW_DIAL_TIMEOUT_MS = 10_000;

/** A flow's header, as the engine writes it. */
export interface FlowHeader {
  readonly proto: 'tcp' | 'udp';
  /** The workstation side: "10.243.254.2:51234". */
  readonly src: string;
  /** The cluster side, where the manager dials: "10.96.0.10:80" or "[fd00::1]:80". */
  readonly dst: string;
}

/** Parses a header line (without its `\n`); undefined for anything else. */
export function parseFlowHeader(line: string): FlowHeader | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { proto, src, dst } = value as Record<string, unknown>;
  if ((proto !== 'tcp' && proto !== 'udp') || typeof src !== 'string' || typeof dst !== 'string') return undefined;
  if (!isHostPort(dst)) return undefined;
  return { proto, src, dst };
}

/** "1.2.3.4:80" or "[fd00::1]:80": what the manager accepts as a destination. */
function isHostPort(text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(text);
  if (m === null) return false;
  const ip = m[1] ?? m[2] ?? '';
  return net.isIP(ip) === (m[1] !== undefined ? 6 : 4) && Number(m[3]) > 0 && Number(m[3]) <= 65535;
}

/** The flow server's I/O. */
export interface FlowServerPorts {
  /** Opens one Outbound stream (TunnelManagerClient's `outbound()`, whose codec reads `data` without a copy). */
  readonly openOutbound: () => ClientDuplexStream<TunnelMessage, TunnelMessage>;
  /** The client session the flows belong to. */
  readonly sessionId: () => string;
  readonly log: Logger;
  /** A stream parked at the manager's dial port for a TCP flow, if one is ready (ParkedStreams.take). */
  readonly takeParked?: () => DirectStream | undefined;
}

/** The header of a TCP flow on a parked stream (manager.proto, "Outbound fast path"). */
export interface FastFlowHeader extends DirectHello {
  readonly protocol: 'tcp';
  readonly destination: string;
}

export interface FlowServerOptions {
  /** The Unix socket the engine connects to (OutboundConfig.flow_socket). */
  readonly socketPath: string;
  /** FLOW_DIAL_TIMEOUT_MS unless a test says otherwise. */
  readonly dialTimeoutMs?: number | undefined;
}

/** Counters for `status`. */
export interface FlowStats {
  /** TCP and UDP flows since the server started. */
  readonly tcpFlows: number;
  readonly udpFlows: number;
  /** Of the TCP flows, those that took a parked stream (the fast path). */
  readonly fastFlows: number;
  /** Flows whose connection is open now. */
  readonly activeFlows: number;
}

export interface FlowServer {
  readonly socketPath: string;
  stats(): FlowStats;
  /** Stops listening, ends every flow (the engine resets their connections), removes the socket file. */
  close(): Promise<void>;
}

/** Removes a socket file left by a daemon that died; refuses to remove anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) {
    throw new TpError('config', 'flow-socket-path', `${path} exists and is not a socket`, { hint: `remove ${path}, or choose another path` });
  }
  // A daemon still serving there would lose its engine to us: say so instead.
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new TpError('config', 'flow-socket-busy', `another process serves the flow socket ${path}`, { hint: 'quit the other daemon first' });
  }
  unlinkSync(path);
}

/** Starts listening on `options.socketPath`; resolves once the socket is there, mode 0600. */
export async function startFlowServer(ports: FlowServerPorts, options: FlowServerOptions): Promise<FlowServer> {
  const { socketPath } = options;
  const dialTimeoutMs = options.dialTimeoutMs ?? FLOW_DIAL_TIMEOUT_MS;
  const counts = { tcpFlows: 0, udpFlows: 0, fastFlows: 0 };
  const flows = new Set<Socket>();

  await removeStaleSocket(socketPath);
  const server: Server = net.createServer({ allowHalfOpen: true, ...spliceSocketOptions }, (socket) => {
    flows.add(socket);
    socket.once('close', () => flows.delete(socket));
    readHeader(socket, (header, rest) => {
      if (header.proto === 'tcp') {
        counts.tcpFlows++;
        const parked = ports.takeParked?.();
        if (parked !== undefined) {
          counts.fastFlows++;
          runFastTcpFlow(socket, header, rest, parked, ports, dialTimeoutMs);
        } else runTcpFlow(socket, header, rest, ports, dialTimeoutMs);
      } else {
        counts.udpFlows++;
        runUdpFlow(socket, header, rest, ports);
      }
    }, ports.log);
  });

  // The socket is a door into the cluster with this user's session: another local user who could
  // connect would reach every Service and pod. So it is created 0600 (the umask covers the window
  // between bind and chmod; listen binds synchronously, and no other code runs in between), and
  // chmod'ed again before the first connection is accepted.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o177);
    try {
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  chmodSync(socketPath, 0o600);
  server.on('error', (err) => ports.log('warn', `flow server: ${err.message}`));

  let closed = false;
  return {
    socketPath,
    stats: () => ({ ...counts, activeFlows: flows.size }),
    close: async () => {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of flows) socket.destroy();
      await stopped;
      try {
        unlinkSync(socketPath);
      } catch {
        // Gone already (server.close removes it on some platforms).
      }
    },
  };
}

/**
 * Reads the header line, at most FLOW_HEADER_MAX_BYTES, and hands it over with whatever bytes came
 * after it in the same reads. Anything else (too long, not JSON, the connection ending first)
 * closes the connection.
 */
function readHeader(socket: Socket, onHeader: (header: FlowHeader, rest: Buffer) => void, log: Logger): void {
  let seen: Buffer = Buffer.alloc(0);
  const fail = (why: string): void => {
    socket.off('data', onData);
    log('warn', `flow: bad header from the engine (${why}); closing`);
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const nl = seen.indexOf(0x0a);
    if (nl < 0) {
      if (seen.length >= FLOW_HEADER_MAX_BYTES) fail('no end of line within 512 bytes');
      return;
    }
    if (nl >= FLOW_HEADER_MAX_BYTES) return fail('longer than 512 bytes');
    const header = parseFlowHeader(seen.subarray(0, nl).toString('utf8'));
    if (header === undefined) return fail(JSON.stringify(seen.subarray(0, Math.min(nl, 80)).toString('utf8')));
    socket.off('data', onData);
    socket.off('end', onEnd);
    // Nothing more is read until the flow is set up: it attaches its own reader.
    socket.pause();
    onHeader(header, seen.subarray(nl + 1));
  };
  const onEnd = (): void => fail('connection ended first');
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.on('error', () => socket.destroy());
}

/** Opens the Outbound stream and sends `open`; undefined when the client cannot (no manager). */
function openStream(ports: FlowServerPorts, header: FlowHeader): ClientDuplexStream<TunnelMessage, TunnelMessage> | undefined {
  try {
    const call = ports.openOutbound();
    call.write({ open: { sessionId: ports.sessionId(), connectionId: randomUUID(), interceptId: '', protocol: header.proto, destination: header.dst, containerPort: 0 } });
    return call;
  } catch (err) {
    ports.log('warn', `flow ${header.proto} ${header.src} -> ${header.dst}: cannot open a stream to the manager: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/**
 * Ends our writing (after `last`, if given) and closes the connection once that is flushed,
 * whether or not the engine has finished writing: nobody will read what it still sends.
 */
function endThenClose(socket: Socket, last?: Buffer): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded) {
    if (last !== undefined) socket.end(last);
    else socket.end();
  }
  if (socket.writableFinished) socket.destroy();
  else socket.once('finish', () => socket.destroy());
}

/** Corks `socket` until the end of this turn of the event loop, so that a turn's writes go out as one. */
function corkForThisTurn(socket: Socket): void {
  if (socket.writableCorked > 0 || socket.destroyed) return;
  socket.cork();
  setImmediate(() => socket.uncork());
}

/**
 * One TCP flow over a parked stream: send the header, wait for the manager's answer, answer the
 * status byte, then splice (with half-close both ways: the length-0 frame of direct-stream.ts).
 * A stream that breaks mid-flow destroys the connection, which the engine turns into a reset.
 */
function runFastTcpFlow(socket: Socket, header: FlowHeader, early: Buffer, stream: DirectStream, ports: FlowServerPorts, dialTimeoutMs: number): void {
  const tag = `flow tcp ${header.src} -> ${header.dst}`;
  const { log } = ports;
  const hello: FastFlowHeader = { session: ports.sessionId(), protocol: 'tcp', destination: header.dst };
  stream.sendHeader(hello);
  let settled = false;
  /** True the first time only: the answer, the timeout and the engine's giving up race. */
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    socket.off('close', engineGone);
    return true;
  };
  const refuse = (status: number, why: string): void => {
    log('info', `${tag}: ${why}`);
    stream.destroy();
    endThenClose(socket, Buffer.of(status));
  };
  const timer = setTimeout(() => {
    if (settle()) refuse(FLOW_STATUS.unreachable, `no answer from the manager within ${dialTimeoutMs} ms`);
  }, dialTimeoutMs);
  const engineGone = (): void => {
    if (settle()) stream.destroy();
  };
  socket.once('close', engineGone);
  stream.header.then(
    (bytes) => {
      if (!settle()) return;
      let answer: Record<string, unknown>;
      try {
        answer = parseHeader(bytes);
      } catch (err: unknown) {
        refuse(FLOW_STATUS.unreachable, `the manager's answer: ${(err as Error).message}`);
        return;
      }
      if (answer.ok !== true) {
        const error = typeof answer.error === 'string' ? answer.error : 'an answer without ok or error';
        refuse(error.startsWith('refused:') ? FLOW_STATUS.refused : FLOW_STATUS.unreachable, `the manager could not dial: ${error}`);
        return;
      }
      socket.write(Buffer.of(FLOW_STATUS.connected));
      if (early.length > 0) stream.write(early);
      void splice(socket, stream).then((result) => {
        if (result.error !== undefined) log('info', `${tag}: ${result.error.message}`);
        else log('debug', `${tag}: closed, ${result.aToB} bytes out, ${result.bToA} in`);
      });
    },
    (err: unknown) => {
      if (!settle()) return;
      // Parked at a manager that has gone, or a port-forward that broke while idle: nothing was
      // dialled for us, so an Outbound call may still try.
      log('debug', `${tag}: the parked stream closed before the manager answered (${(err as Error).message}); taking an Outbound call`);
      runTcpFlow(socket, header, early, ports, dialTimeoutMs);
    },
  );
}

/**
 * One TCP flow: wait for the manager's dial, answer the status byte, then relay both ways with
 * backpressure (a full socket pauses the stream and a full stream the socket) and half-close
 * (the engine's EOF becomes our `close`, the manager's `close` our end()).
 */
function runTcpFlow(socket: Socket, header: FlowHeader, early: Buffer, ports: FlowServerPorts, dialTimeoutMs: number): void {
  const tag = `flow tcp ${header.src} -> ${header.dst}`;
  const { log } = ports;
  const call = openStream(ports, header);
  if (call === undefined) {
    endThenClose(socket, Buffer.of(FLOW_STATUS.unreachable));
    return;
  }
  let connected = false;
  let sentClose = false;
  let receivedClose = false;
  let callDone = false;

  const endCall = (): void => {
    if (!callDone) {
      callDone = true;
      call.end();
    }
  };
  const cancelCall = (): void => {
    if (!callDone) {
      callDone = true;
      call.cancel();
    }
  };
  /** Before the status byte: answer it, close, and forget the stream. */
  const refuse = (status: number, why: string): void => {
    if (connected) return;
    connected = true; // No second status byte.
    clearTimeout(timer);
    log('info', `${tag}: ${why}`);
    cancelCall();
    endThenClose(socket, Buffer.of(status));
  };
  const timer = setTimeout(() => refuse(FLOW_STATUS.unreachable, `no answer from the manager within ${dialTimeoutMs} ms`), dialTimeoutMs);

  const startRelay = (): void => {
    connected = true;
    clearTimeout(timer);
    socket.write(Buffer.of(FLOW_STATUS.connected));
    if (early.length > 0) call.write({ data: early });
    socket.on('data', (chunk: Buffer) => {
      if (!call.write({ data: chunk })) {
        socket.pause();
        call.once('drain', () => socket.resume());
      }
    });
    socket.on('end', () => {
      if (!sentClose && !callDone) {
        sentClose = true;
        call.write({ close: { error: '' } });
      }
      if (receivedClose) endCall();
    });
    socket.resume();
  };

  call.on('data', (msg: TunnelMessage) => {
    if (!connected) {
      if (msg.open !== undefined) startRelay();
      else if (msg.close !== undefined) {
        const refused = msg.close.error.startsWith('refused:');
        refuse(refused ? FLOW_STATUS.refused : FLOW_STATUS.unreachable, `the manager could not dial: ${msg.close.error}`);
      } else refuse(FLOW_STATUS.unreachable, 'the manager sent data before it had dialled');
      return;
    }
    if (msg.data !== undefined) {
      if (socket.destroyed) return;
      corkForThisTurn(socket);
      if (!socket.write(msg.data)) {
        call.pause();
        socket.once('drain', () => call.resume());
      }
    } else if (msg.close !== undefined && !receivedClose) {
      receivedClose = true;
      if (msg.close.error !== '') {
        log('info', `${tag}: closed by the cluster side: ${msg.close.error}`);
        socket.destroy();
        cancelCall();
      } else {
        socket.end();
        if (sentClose) endCall();
      }
    }
  });
  call.on('error', (err: Error) => {
    if (!connected) {
      refuse(FLOW_STATUS.unreachable, `the manager's stream failed: ${err.message}`);
      return;
    }
    // The manager went away mid-flow, or cancelled it (CANCELLED after our own cancel is ours).
    if (!callDone) log('warn', `${tag}: ${err.message}`);
    callDone = true;
    socket.destroy();
  });
  call.on('end', () => {
    if (!connected) {
      refuse(FLOW_STATUS.unreachable, 'the manager ended the stream without dialling');
      return;
    }
    callDone = true;
    // The manager ended the pair: pass on what it sent, then close. When the engine had finished
    // sending, that is the normal end; when it had not, nobody will take its bytes any more.
    if (socket.readableEnded) {
      if (!socket.writableEnded) socket.end();
    } else endThenClose(socket);
  });
  socket.on('error', (err) => log('debug', `${tag}: ${err.message}`));
  socket.once('close', () => {
    clearTimeout(timer);
    // Not both halves closed cleanly: the engine reset the connection, or we did. The manager
    // must drop its side too.
    if (!(sentClose && receivedClose)) cancelCall();
  });
}

/**
 * One UDP flow: each frame from the engine is one `data` message and each `data` message one
 * frame back. The manager's `open` echo needs no wait: datagrams sent before it are queued
 * behind `open` on the stream.
 */
function runUdpFlow(socket: Socket, header: FlowHeader, early: Buffer, ports: FlowServerPorts): void {
  const tag = `flow udp ${header.src} -> ${header.dst}`;
  const { log } = ports;
  const call = openStream(ports, header);
  if (call === undefined) {
    socket.destroy();
    return;
  }
  let callDone = false;
  let pending: Buffer = Buffer.alloc(0);

  const takeFrames = (chunk: Buffer): void => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let ok = true;
    while (pending.length >= 2) {
      const length = pending.readUInt16BE(0);
      if (pending.length < 2 + length) break;
      // A view: the chunk is not reused, and the codec copies it into the message.
      ok = call.write({ data: pending.subarray(2, 2 + length) }) && ok;
      pending = pending.subarray(2 + length);
    }
    if (!ok && !callDone) {
      socket.pause();
      call.once('drain', () => socket.resume());
    }
  };
  if (early.length > 0) takeFrames(early);
  socket.on('data', takeFrames);
  socket.on('end', () => {
    if (!callDone) {
      callDone = true;
      call.end();
    }
    socket.end();
  });
  socket.on('error', (err) => log('debug', `${tag}: ${err.message}`));
  socket.once('close', () => {
    if (!callDone) {
      callDone = true;
      call.cancel();
    }
  });
  socket.resume();

  call.on('data', (msg: TunnelMessage) => {
    if (msg.data !== undefined) {
      if (socket.destroyed || msg.data.length > 0xffff) return;
      const head = Buffer.allocUnsafe(2);
      head.writeUInt16BE(msg.data.length, 0);
      // Both parts in one writev, without copying the datagram.
      socket.cork();
      socket.write(head);
      const room = socket.write(msg.data);
      socket.uncork();
      if (!room) {
        call.pause();
        socket.once('drain', () => call.resume());
      }
    } else if (msg.close !== undefined) {
      if (msg.close.error !== '') log('info', `${tag}: ${msg.close.error}`);
      endThenClose(socket);
    }
  });
  call.on('error', (err: Error) => {
    if (!callDone) log('warn', `${tag}: ${err.message}`);
    callDone = true;
    socket.destroy();
  });
  call.on('end', () => {
    callDone = true;
    endThenClose(socket);
  });
}
