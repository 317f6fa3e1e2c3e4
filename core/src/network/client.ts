/**
 * The user daemon's side of the network daemon socket: a promise API over the Network service
 * (errors rebuilt as TpError), and finding or starting the network daemon.
 */
import { credentials, type ClientReadableStream } from '@grpc/grpc-js';
import { NetworkClient, type OutboundConfig, type OutboundEvent, type OutboundReady, type VersionResponse } from '@telepresence-ts/proto/network/v1';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { TpError } from '../errors.js';
import { deadlineIn, unary } from '../grpc-call.js';
import { fromServiceError, hasGrpcStatus } from '../wire-errors.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { detachedNetworkDaemonLauncher } from './launcher.js';
import { NETWORK_SOCKET_ENV, networkDaemonLogPath, networkSocketPath } from './paths.js';

/** Outbound access that is up; it stays up until `stop()` or the network daemon ends it. */
export interface OutboundSession {
  readonly ready: OutboundReady;
  /**
   * Settles when the session is over: undefined when it ended normally (stop(), or the network
   * daemon quit), a TpError when it failed (the packet engine exited: `engine-exited`).
   */
  readonly ended: Promise<TpError | undefined>;
  /** Ends the call; the network daemon then removes the device, routes and DNS redirect. */
  stop(): void;
}

/** What the user daemon can ask of the network daemon (fakes implement it in tests). */
export interface NetworkApi {
  version(): Promise<VersionResponse>;
  /**
   * Brings outbound access up, streaming progress lines; resolves once it is up. Rejects with the
   * network daemon's TpError (`outbound-busy`, `bad-outbound-config`, `outbound-*-failed`, ...).
   */
  outbound(config: OutboundConfig, progress: (line: string) => void): Promise<OutboundSession>;
  /** Takes down whatever is up and stops the network daemon. */
  quit(): Promise<void>;
  /** Closes this client's channel: any session of it ends. */
  close(): void;
}

function unreachable(details: string): TpError {
  return new TpError('cluster', 'network-daemon-unreachable', `cannot reach the telepresence network daemon: ${details}`, {
    hint: 'connect again; `sudo kubectl telepresence network-daemon` starts it',
  });
}

/** Deadline of the unary calls: none of them does more than local work. */
const LOCAL_CALL_MS = 10_000;

export class GrpcNetworkClient implements NetworkApi {
  private readonly client: NetworkClient;

  constructor(socketPath: string) {
    this.client = new NetworkClient(`unix:${socketPath}`, credentials.createInsecure());
  }

  version(ms: number = LOCAL_CALL_MS): Promise<VersionResponse> {
    return unary(this.client.version.bind(this.client), {}, { deadline: deadlineIn(ms), unavailable: unreachable });
  }

  /** Version with a short deadline, to tell a live daemon from a stale socket. */
  async ping(ms: number): Promise<boolean> {
    try {
      await this.version(ms);
      return true;
    } catch {
      return false;
    }
  }

  async quit(): Promise<void> {
    await unary(this.client.quit.bind(this.client), {}, { deadline: deadlineIn(LOCAL_CALL_MS), unavailable: unreachable });
  }

  outbound(config: OutboundConfig, progress: (line: string) => void): Promise<OutboundSession> {
    // No deadline: the call lasts as long as outbound access does.
    const stream: ClientReadableStream<OutboundEvent> = this.client.outbound(config);
    let stopped = false;
    let ready: OutboundReady | undefined;
    let settleEnded: (err: TpError | undefined) => void = () => undefined;
    const ended = new Promise<TpError | undefined>((resolve) => (settleEnded = resolve));
    return new Promise<OutboundSession>((resolve, reject) => {
      stream.on('data', (event: OutboundEvent) => {
        if (event.progress !== undefined) progress(event.progress);
        else if (event.ready !== undefined && ready === undefined) {
          ready = event.ready;
          resolve({
            ready,
            ended,
            stop: () => {
              stopped = true;
              stream.cancel();
            },
          });
        }
      });
      stream.on('error', (err: Error) => {
        const tp = stopped && hasGrpcStatus(err, grpcStatus.CANCELLED) ? undefined : fromServiceError(err, { unavailable: unreachable });
        if (ready === undefined) reject(tp ?? new TpError('internal', 'outbound-incomplete', 'the Outbound call ended before outbound access was up'));
        settleEnded(tp);
      });
      stream.on('end', () => {
        if (ready === undefined) reject(new TpError('internal', 'outbound-incomplete', 'the network daemon ended the Outbound call before outbound access was up'));
        settleEnded(undefined);
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** True when a network daemon answers Version on the socket within a second. */
export async function pingNetworkDaemon(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  const client = new GrpcNetworkClient(socketPath);
  try {
    return await client.ping(1_000);
  } finally {
    client.close();
  }
}

export interface ConnectNetworkDaemonOptions {
  /** The CLI bundle (absolute): what a root caller starts, and what the hint tells others to run. */
  readonly cliPath: string;
  /** Default: networkSocketPath(). */
  readonly socketPath?: string;
  /** The user the network daemon serves. Default: this process's real uid. */
  readonly ownerUid?: number;
  /** Default: process.geteuid(). */
  readonly euid?: number;
  /** Starts the daemon (only when euid is 0). Default: detachedNetworkDaemonLauncher. */
  readonly launch?: () => void;
  /** Where the started daemon logs. Default: networkDaemonLogPath() (root's cache folder). */
  readonly logPath?: string;
  readonly clock?: Clock;
  /** How long a started daemon may take to answer. Default: NETWORK_DAEMON_START_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** The CLI bundle starts and loads in well under a second here; three leaves room for a busy host. */
export const NETWORK_DAEMON_START_TIMEOUT_MS = 3_000;
const POLL_MS = 100;

/** Directories sudo's usual secure_path covers, where the CLI shim's `node` will be found. */
const SECURE_PATH_DIRS = new Set(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']);

/** The command line that starts the network daemon by hand, as the needs-root hint gives it. */
export function startNetworkDaemonCommand(cliPath: string, ownerUid: number, socketPath: string, defaultSocketPath: string, execPath: string = process.execPath): string {
  // sudo resets the environment: a socket moved by the environment must be passed on explicitly.
  const env = socketPath !== defaultSocketPath ? `env ${NETWORK_SOCKET_ENV}=${socketPath} ` : '';
  // The CLI is a script for node; name node too unless sudo's PATH will find it anyway.
  const node = SECURE_PATH_DIRS.has(dirname(execPath)) ? '' : `${execPath} `;
  return `sudo ${env}${node}${cliPath} network-daemon --owner ${ownerUid}`;
}

/**
 * A client of the network daemon. When none answers on the socket: a root caller starts one (and
 * waits for it); anyone else gets `needs-root`, whose hint says what to run.
 */
export async function connectNetworkDaemon(options: ConnectNetworkDaemonOptions): Promise<NetworkApi> {
  const env = options.env ?? process.env;
  const socketPath = options.socketPath ?? networkSocketPath(env);
  if (await pingNetworkDaemon(socketPath)) return new GrpcNetworkClient(socketPath);

  const ownerUid = options.ownerUid ?? process.getuid?.() ?? 0;
  const euid = options.euid ?? process.geteuid?.() ?? 0;
  if (euid !== 0) {
    throw new TpError('config', 'needs-root', 'outbound access needs root for its network device, routes and DNS redirect', {
      hint: `run \`${startNetworkDaemonCommand(options.cliPath, ownerUid, socketPath, networkSocketPath({}))}\`, then connect again; or connect with \`kubectl telepresence connect --outbound=false\` for intercepts only`,
    });
  }
  const logPath = options.logPath ?? networkDaemonLogPath();
  (options.launch ?? detachedNetworkDaemonLauncher(options.cliPath, logPath, ownerUid, env))();
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + (options.timeoutMs ?? NETWORK_DAEMON_START_TIMEOUT_MS);
  while (clock.now() < deadline) {
    await clock.sleep(POLL_MS);
    if (await pingNetworkDaemon(socketPath)) return new GrpcNetworkClient(socketPath);
  }
  throw new TpError('internal', 'network-daemon-start-failed', `the telepresence network daemon did not start listening on ${socketPath}`, {
    hint: `see ${logPath} (root's cache folder)`,
  });
}
