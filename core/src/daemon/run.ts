/**
 * The daemon process's composition: log file, the Daemon centre with the port-forward connector,
 * and its gRPC server on the Unix socket. `daemon-foreground` (a hidden CLI verb) calls
 * `runDaemon` and stays in it until Quit or the abort signal.
 */
import { Server } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { TpError } from '../errors.js';
import type { KubeApiFactory } from '../kube/kube-api.js';
import { pingDaemon } from '../daemon-client.js';
import { nodeProcessRunner } from '../process/node-process-runner.js';
import { Daemon } from './daemon.js';
import { fileLogger, type Logger } from './logger.js';
import { portForwardConnector, type ManagerConnector } from './manager-connection.js';
import { Mounter } from './mounts.js';
import { outboundPorts } from './outbound-ports.js';
import { cacheDir } from './paths.js';
import { addDaemonToServer, bindServer, closeServer } from './server.js';

export interface RunDaemonOptions {
  readonly socketPath: string;
  readonly logPath: string;
  readonly version: string;
  readonly kubeFactory: KubeApiFactory;
  /** Overrides the port-forward connector (tests). */
  readonly connector?: ManagerConnector;
  /** Stops the daemon like Quit does (the CLI binds it to SIGINT/SIGTERM). */
  readonly signal?: AbortSignal;
  /**
   * The CLI bundle, which the network daemon runs as (outbound access needs it). Without it,
   * connections have no outbound access.
   */
  readonly cliPath?: string;
}

/** A stable id for this workstation's installation, kept in the cache folder. */
function installId(): string {
  const path = join(cacheDir(), 'install-id');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    const id = randomUUID();
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, `${id}\n`);
    } catch {
      // Without a writable cache the id is per run; the manager only uses it for display.
    }
    return id;
  }
}

function clientName(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

/** Runs the daemon until Quit (or `signal`); rejects when another daemon already serves the socket. */
export async function runDaemon(options: RunDaemonOptions): Promise<void> {
  mkdirSync(dirname(options.socketPath), { recursive: true, mode: 0o700 });
  mkdirSync(dirname(options.logPath), { recursive: true, mode: 0o700 });
  const log: Logger = fileLogger(options.logPath);
  if (existsSync(options.socketPath)) {
    if (await pingDaemon(options.socketPath)) {
      throw new TpError('user', 'daemon-running', `a daemon already serves ${options.socketPath}`, { hint: 'run: kubectl telepresence quit' });
    }
    // A socket left by a daemon that died: nobody answers on it.
    unlinkSync(options.socketPath);
  }
  const mounter = new Mounter({ runner: nodeProcessRunner, log });
  // A daemon that was killed leaves its sshfs mounts dead (ENOTCONN); this one cleans them.
  const stale = await mounter.cleanStale();
  if (stale.length > 0) log('info', `removed stale mounts: ${stale.join(', ')}`);
  const daemon = new Daemon({
    version: options.version,
    connector: options.connector ?? portForwardConnector(options.kubeFactory, log),
    log,
    clientName: clientName(),
    installId: installId(),
    mounter,
    outbound: options.cliPath !== undefined ? outboundPorts({ daemonSocketPath: options.socketPath, cliPath: options.cliPath, log }) : undefined,
  });
  const server = new Server();
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  addDaemonToServer(server, daemon, log, () => stop());
  await bindServer(server, `unix:${options.socketPath}`);
  chmodSync(options.socketPath, 0o600);
  log('info', `daemon v${options.version} (pid ${process.pid}, Node ${process.version}) listening on ${options.socketPath}`);
  const onAbort = (): void => {
    void daemon.shutdown().finally(() => stop());
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  await stopped;
  options.signal?.removeEventListener('abort', onAbort);
  await closeServer(server, options.socketPath);
  log('info', 'daemon stopped');
}
