/**
 * The front ends' side of the daemon socket: a promise API over the Daemon service (errors rebuilt
 * as TpError), and starting the daemon when a command needs it.
 */
import { credentials, type ClientReadableStream } from '@grpc/grpc-js';
import {
  DaemonClient,
  type ConnectRequest,
  type ConnectionStatus,
  type InterceptEvent,
  type InterceptRemote,
  type ListResponse,
  type StateSnapshot,
  type UninstallAgentsRequest,
  type VersionResponse,
  type WatchTrafficRequest,
} from '@telepresence-ts/proto/daemon/v1';
import type { InterceptInfo, InterceptSpec, TrafficEvent, UninstallAgentsResponse } from '@telepresence-ts/proto/manager/v1';
import { existsSync } from 'node:fs';
import { systemClock, type Clock } from './clock.js';
import { TpError } from './errors.js';
import { deadlineIn, unary } from './grpc-call.js';
import { fromServiceError } from './wire-errors.js';

/** What an intercept brings to the workstation besides traffic (daemon.proto InterceptRequest). */
export interface InterceptOptions {
  /** Mount the container's volumes with sshfs. */
  readonly mount?: boolean;
  /** Absolute; empty for a fresh temporary directory. */
  readonly mountPoint?: string;
  /** Absolute paths to write the environment to (dotenv, JSON). */
  readonly envFile?: string;
  readonly envJson?: string;
  /** Let other users (a container) read the mount. */
  readonly mountAllowOther?: boolean;
}

/** A created intercept with its environment and mount. */
export type InterceptOutcome = InterceptInfo & { readonly remote?: InterceptRemote | undefined };

/** What front ends can ask of the daemon (fakes implement it in CLI tests). */
export interface DaemonApi {
  version(): Promise<VersionResponse>;
  connect(req: ConnectRequest): Promise<ConnectionStatus>;
  status(): Promise<ConnectionStatus>;
  list(namespace: string): Promise<ListResponse>;
  /**
   * Streams progress lines to `progress`; resolves with the created intercept and, from a daemon
   * that set them up, the container's environment and mount (`remote`).
   */
  intercept(spec: InterceptSpec, progress: (line: string) => void, options?: InterceptOptions): Promise<InterceptOutcome>;
  leave(name: string): Promise<void>;
  uninstallAgents(req: UninstallAgentsRequest): Promise<UninstallAgentsResponse>;
  /** Stops the daemon (it departs from the manager first). */
  quit(): Promise<void>;
  /** Calls `onSnapshot` on every change until the returned function is called or the daemon goes. */
  watchState(onSnapshot: (s: StateSnapshot) => void, onEnd: (err: TpError | undefined) => void): () => void;
  /**
   * The traffic of an engagement (ours, or another client's as `list` names it) as it happens:
   * `onEvent` for each event (the last ones kept first), `onEnd` once, when the stream ends
   * (`err` undefined when cleanly). The returned function stops watching; `onEnd` is not called then.
   */
  watchTraffic(req: WatchTrafficRequest, onEvent: (e: TrafficEvent) => void, onEnd: (err: TpError | undefined) => void): () => void;
  /** Closes this client's channel (the daemon keeps running). */
  close(): void;
}

function daemonUnavailable(details: string): TpError {
  return new TpError('cluster', 'daemon-unreachable', `cannot reach the telepresence daemon: ${details}`, {
    hint: 'run `kubectl telepresence connect` to start it',
  });
}

/** Deadline of calls that do no cluster work. */
const LOCAL_CALL_MS = 5_000;
/** Connect finds a pod and opens a port-forward: a slow API server may take a while. */
const CONNECT_CALL_MS = 60_000;

export class GrpcDaemonClient implements DaemonApi {
  private readonly client: DaemonClient;

  constructor(socketPath: string) {
    this.client = new DaemonClient(`unix:${socketPath}`, credentials.createInsecure());
  }

  private call<Req, Res>(method: Parameters<typeof unary<Req, Res>>[0], req: Req, ms: number = LOCAL_CALL_MS): Promise<Res> {
    return unary(method, req, { deadline: deadlineIn(ms), unavailable: daemonUnavailable });
  }

  version(): Promise<VersionResponse> {
    return this.call(this.client.version.bind(this.client), {});
  }
  /** Version with a short deadline, to tell a live daemon from a stale socket. */
  async ping(ms: number): Promise<boolean> {
    try {
      await this.call(this.client.version.bind(this.client), {}, ms);
      return true;
    } catch {
      return false;
    }
  }
  connect(req: ConnectRequest): Promise<ConnectionStatus> {
    return this.call(this.client.connect.bind(this.client), req, CONNECT_CALL_MS);
  }
  status(): Promise<ConnectionStatus> {
    return this.call(this.client.status.bind(this.client), {});
  }
  list(namespace: string): Promise<ListResponse> {
    return this.call(this.client.list.bind(this.client), { namespace }, CONNECT_CALL_MS);
  }
  async leave(name: string): Promise<void> {
    await this.call(this.client.leave.bind(this.client), { name }, CONNECT_CALL_MS);
  }
  uninstallAgents(req: UninstallAgentsRequest): Promise<UninstallAgentsResponse> {
    return this.call(this.client.uninstallAgents.bind(this.client), req, CONNECT_CALL_MS);
  }
  async quit(): Promise<void> {
    await this.call(this.client.quit.bind(this.client), {});
  }

  async intercept(spec: InterceptSpec, progress: (line: string) => void, options: InterceptOptions = {}): Promise<InterceptOutcome> {
    // No deadline: prepare waits for a rollout, and the manager bounds that wait itself.
    const stream: ClientReadableStream<InterceptEvent> = this.client.intercept({
      spec,
      mount: options.mount ?? false,
      mountPoint: options.mountPoint ?? '',
      envFile: options.envFile ?? '',
      envJson: options.envJson ?? '',
      mountAllowOther: options.mountAllowOther ?? false,
    });
    let result: InterceptOutcome | undefined;
    try {
      for await (const event of stream as AsyncIterable<InterceptEvent>) {
        if (event.progress !== undefined) {
          progress(event.progress);
        } else if (event.intercept !== undefined) {
          result = { ...event.intercept, remote: event.remote };
        }
      }
    } catch (err: unknown) {
      throw fromServiceError(err, { unavailable: daemonUnavailable });
    }
    if (result === undefined) {
      throw new TpError('internal', 'intercept-incomplete', 'the daemon ended the intercept without a result');
    }
    return result;
  }

  watchState(onSnapshot: (s: StateSnapshot) => void, onEnd: (err: TpError | undefined) => void): () => void {
    const stream = this.client.watchState({});
    let cancelled = false;
    stream.on('data', onSnapshot);
    stream.on('error', (err: Error) => {
      if (!cancelled) {
        onEnd(fromServiceError(err, { unavailable: daemonUnavailable }));
      }
    });
    stream.on('end', () => {
      if (!cancelled) {
        onEnd(undefined);
      }
    });
    return () => {
      cancelled = true;
      stream.cancel();
    };
  }

  watchTraffic(req: WatchTrafficRequest, onEvent: (e: TrafficEvent) => void, onEnd: (err: TpError | undefined) => void): () => void {
    const stream = this.client.watchTraffic(req);
    let stopped = false;
    stream.on('data', (e: TrafficEvent) => {
      if (!stopped) onEvent(e);
    });
    stream.on('error', (err: Error) => {
      if (!stopped) onEnd(fromServiceError(err, { unavailable: daemonUnavailable }));
      stopped = true;
    });
    stream.on('end', () => {
      if (!stopped) onEnd(undefined);
      stopped = true;
    });
    return () => {
      if (stopped) return;
      stopped = true;
      stream.cancel();
    };
  }

  close(): void {
    this.client.close();
  }
}

/** True when a daemon answers Version on the socket within a second. */
export async function pingDaemon(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) {
    return false;
  }
  const client = new GrpcDaemonClient(socketPath);
  try {
    return await client.ping(1_000);
  } finally {
    client.close();
  }
}

export interface OpenDaemonOptions {
  readonly socketPath: string;
  /** Starts a daemon when none answers; absent: return undefined instead. */
  readonly start?: (() => void) | undefined;
  /** Where the daemon logs, for the hint when it does not come up. */
  readonly logPath?: string;
  readonly clock?: Clock;
  readonly timeoutMs?: number;
}

/** How long a freshly spawned daemon may take to answer: Node start-up plus loading the bundle. */
export const DAEMON_START_TIMEOUT_MS = 10_000;
const DAEMON_POLL_MS = 100;

/** A client of the running daemon; starts one first when asked to. */
export async function openDaemon(options: OpenDaemonOptions): Promise<DaemonApi | undefined> {
  if (await pingDaemon(options.socketPath)) {
    return new GrpcDaemonClient(options.socketPath);
  }
  if (options.start === undefined) {
    return undefined;
  }
  options.start();
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + (options.timeoutMs ?? DAEMON_START_TIMEOUT_MS);
  while (clock.now() < deadline) {
    await clock.sleep(DAEMON_POLL_MS);
    if (await pingDaemon(options.socketPath)) {
      return new GrpcDaemonClient(options.socketPath);
    }
  }
  throw new TpError('internal', 'daemon-start-failed', `the telepresence daemon did not start listening on ${options.socketPath}`, {
    hint: options.logPath !== undefined ? `see ${options.logPath}` : undefined,
  });
}
