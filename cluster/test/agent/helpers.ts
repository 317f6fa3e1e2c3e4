/** Test helpers of the traffic-agent suites: real sockets on 127.0.0.1, a fake manager, polling. */
import { Server, ServerCredentials, status, type ServerDuplexStream, type ServerReadableStream, type ServerWritableStream } from '@grpc/grpc-js';
import {
  InterceptDisposition,
  ManagerService,
  type AgentInfo,
  type InterceptInfo,
  type InterceptSnapshot,
  type SessionInfo,
  type TrafficEvent,
  type TrafficReport,
  type TunnelMessage,
  type TunnelOpen,
} from '@telepresence-ts/proto/manager/v1';
import { connect, createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Logger } from '../../src/shared/log.js';

/** A logger that keeps its lines, for asserting on them (and for reading a failing test's story). */
export function memoryLogger(): Logger & { lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at =
    (level: string) =>
    (msg: string, fields: Readonly<Record<string, unknown>> = {}): void => {
      lines.push({ level, msg, fields: { ...fields } });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Polls until `condition()` holds (at most `timeoutMs`); throws naming `what` otherwise. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  await eventually(() => {
    if (!condition()) throw new Error('still false');
  }, what, timeoutMs);
}

/** Polls `check` (which throws until satisfied) every 20 ms for at most `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err: unknown) {
      if (Date.now() >= deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms: ${(err as Error).message}`, { cause: err });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Listens on 127.0.0.1:0 and resolves with the port. */
export function listenLocal(server: NetServer, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export function closeServer(server: NetServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * A stand-in for an app (or for the intercepting client): for each connection it reads until the
 * peer's FIN, then answers `<name>:<what it read>` and ends, proving half-close both ways.
 */
export async function startReplyServer(name: string): Promise<{ port: number; server: NetServer; received: string[] }> {
  const received: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => {
      received.push(data);
      socket.end(`${name}:${data}`);
    });
    socket.on('error', () => {});
  });
  const port = await listenLocal(server);
  return { port, server, received };
}

/** Connects, sends `text`, half-closes, and resolves with everything read until the peer's FIN. */
export function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => {
      resolve(data);
      socket.end();
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('exchange timed out')));
    socket.end(text);
  });
}

/** An open client connection whose received bytes can be awaited piecewise. */
export interface OpenConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves when the received text includes `text`. */
  waitFor(text: string): Promise<void>;
  /** Resolves when the peer ended (FIN) or the connection closed. */
  readonly ended: Promise<'end' | 'close'>;
}

export function openConnection(port: number): Promise<OpenConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    const ended = new Promise<'end' | 'close'>((res) => {
      socket.once('end', () => res('end'));
      socket.once('close', () => res('close'));
    });
    socket.on('error', () => {});
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => data,
        waitFor: (text) =>
          eventually(() => {
            if (!data.includes(text)) throw new Error(`have ${JSON.stringify(data)}`);
          }, `receive ${JSON.stringify(text)}`),
        ended,
      }),
    );
    socket.once('error', reject);
  });
}

/** An intercept as the manager would send it to the agent. */
export function intercept(id: string, agentPort: number, extra: Partial<InterceptInfo> = {}): InterceptInfo {
  return {
    id,
    spec: {
      name: id.split(':')[1] ?? id,
      namespace: 'default',
      workloadName: 'echo',
      workloadKind: 'Deployment',
      serviceName: '',
      servicePort: '',
      containerName: '',
      localPort: 8080,
      headers: [],
      httpPathPrefix: '',
      httpMethods: [],
      mode: '',
      ports: [],
    },
    target: {
      serviceName: 'echo',
      serviceUid: 'uid-1',
      servicePortName: 'http',
      servicePort: 80,
      protocol: 'TCP',
      containerName: 'app',
      containerPort: 8080,
      agentPort,
      sharedWith: [],
    },
    clientSessionId: id.split(':')[0] ?? '',
    clientName: 'dev@laptop',
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 1_700_000_000_000,
    stats: undefined,
    ...extra,
  };
}

/** What the fake manager saw of one Tunnel stream. */
export interface SeenTunnel {
  open: TunnelOpen | undefined;
  data: string;
  closed: boolean;
}

/**
 * A traffic-manager implementing just the calls the agent makes, on a real gRPC server on
 * 127.0.0.1. Its Tunnel plays the intercepting client: it collects the bytes until the agent's
 * close, then answers `client:<bytes>` and closes.
 */
export class FakeManager {
  readonly arrivals: AgentInfo[] = [];
  readonly tunnels: SeenTunnel[] = [];
  /** Every traffic event agents reported, with the session of its report. */
  readonly traffic: Array<TrafficEvent & { sessionId: string }> = [];
  remains = 0;
  departs = 0;
  /** When set, Remain answers NOT_FOUND (an expired session) once per set. */
  expireNext = false;
  /** What arrivals are told of the manager's pod addresses (SessionInfo.manager_pod_ips). */
  podIps: string[] = [];
  #intercepts: InterceptInfo[] = [];
  readonly #watchers = new Set<ServerWritableStream<SessionInfo, InterceptSnapshot>>();
  #server: Server | undefined;
  #port = 0;
  #seq = 0;

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Starts serving: on a free port the first time, on the same port after a stop. */
  async start(): Promise<void> {
    const server = new Server();
    server.addService(ManagerService, {
      version: (_call: unknown, cb: (err: null, res: { version: string; name: string }) => void) => cb(null, { version: '0.1.0', name: 'traffic-manager' }),
      arriveAsAgent: (call: { request: AgentInfo }, cb: (err: null, res: SessionInfo) => void) => {
        this.arrivals.push(call.request);
        // Short heartbeat so the tests see Remain without waiting seconds.
        cb(null, { sessionId: `agent-${++this.#seq}`, heartbeatSeconds: 1, expirySeconds: 3, managerPodIps: this.podIps });
      },
      remain: (_call: unknown, cb: (err: { code: status; details: string } | null, res?: object) => void) => {
        this.remains++;
        if (this.expireNext) {
          this.expireNext = false;
          cb({ code: status.NOT_FOUND, details: 'session expired' });
        } else {
          cb(null, {});
        }
      },
      depart: (_call: unknown, cb: (err: null, res: object) => void) => {
        this.departs++;
        cb(null, {});
      },
      watchIntercepts: (call: ServerWritableStream<SessionInfo, InterceptSnapshot>) => {
        this.#watchers.add(call);
        call.on('cancelled', () => this.#watchers.delete(call));
        call.write({ intercepts: this.#intercepts });
      },
      reportTraffic: (call: ServerReadableStream<TrafficReport, object>, cb: (err: null, res: object) => void) => {
        call.on('data', (report: TrafficReport) => this.traffic.push(...report.events.map((e) => ({ ...e, sessionId: report.session?.sessionId ?? '' }))));
        call.on('end', () => cb(null, {}));
        call.on('error', () => {});
      },
      tunnel: (call: ServerDuplexStream<TunnelMessage, TunnelMessage>) => {
        const seen: SeenTunnel = { open: undefined, data: '', closed: false };
        this.tunnels.push(seen);
        call.on('data', (msg: TunnelMessage) => {
          if (msg.open !== undefined) seen.open = msg.open;
          if (msg.data !== undefined) seen.data += msg.data.toString('utf8');
          if (msg.close !== undefined) {
            seen.closed = true;
            call.write({ data: Buffer.from(`client:${seen.data}`) });
            call.write({ close: { error: '' } });
          }
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    this.#port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.#port}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    this.#server = server;
  }

  /** The manager dies: every call and stream fails at once. */
  stop(): void {
    this.#watchers.clear();
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  /** Replaces the intercepts and pushes a snapshot to every watching agent. */
  setIntercepts(intercepts: InterceptInfo[]): void {
    this.#intercepts = intercepts;
    for (const w of this.#watchers) w.write({ intercepts });
  }
}
