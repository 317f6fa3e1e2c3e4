/**
 * The network daemon process's composition: log file, the NetworkDaemon centre with the Linux
 * adapter and the engine spawner, and its gRPC server on a Unix socket that only the owner (and
 * root) may open. The hidden-by-default `network-daemon --foreground` calls `runNetworkDaemon`
 * and stays in it until Quit or the abort signal.
 */
import { Server } from '@grpc/grpc-js';
import { chmodSync, chownSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TpError } from '../errors.js';
import { fileLogger, type Logger } from '../daemon/logger.js';
import { bindServer, closeServer } from '../daemon/server.js';
import { RESOLV_CONF_PATH } from '../outbound/resolv-conf.js';
import { nodeProcessRunner } from '../process/node-process-runner.js';
import { pingNetworkDaemon } from './client.js';
import type { EngineSpawner } from './engine.js';
import { linuxNetworkSystem } from './linux-network-system.js';
import { NetworkDaemon, type Owner, type PathKind } from './network-daemon.js';
import type { NetworkSystem } from './network-system.js';
import { nodeEngineSpawner } from './node-engine.js';
import { addNetworkToServer } from './server.js';

export interface RunNetworkDaemonOptions {
  readonly socketPath: string;
  readonly logPath: string;
  readonly version: string;
  /** The one user served: owns the socket, and the engine runs as this user and group. */
  readonly owner: Owner;
  /** The packet engine binary (absolute). */
  readonly enginePath: string;
  /** Stops the daemon like Quit does (the CLI binds it to SIGINT/SIGTERM). */
  readonly signal?: AbortSignal;
  /** Override the adapters (tests). */
  readonly system?: NetworkSystem;
  readonly spawnEngine?: EngineSpawner;
  readonly log?: Logger;
}

async function pathKind(path: string): Promise<PathKind> {
  try {
    return (await stat(path)).isSocket() ? 'socket' : 'other';
  } catch {
    return 'missing';
  }
}

/** Runs the network daemon until Quit (or `signal`); rejects when another one already serves the socket. */
export async function runNetworkDaemon(options: RunNetworkDaemonOptions): Promise<void> {
  // 0755: other users may reach the socket's name, and the socket's own mode keeps them out.
  mkdirSync(dirname(options.socketPath), { recursive: true, mode: 0o755 });
  mkdirSync(dirname(options.logPath), { recursive: true, mode: 0o700 });
  const log = options.log ?? fileLogger(options.logPath);
  if (existsSync(options.socketPath)) {
    if (await pingNetworkDaemon(options.socketPath)) {
      throw new TpError('user', 'network-daemon-running', `a network daemon already serves ${options.socketPath}`, {
        hint: 'stop it first: sudo kubectl telepresence network-daemon --stop',
      });
    }
    // A socket left by a daemon that died: nobody answers on it.
    unlinkSync(options.socketPath);
  }
  const system = options.system ?? linuxNetworkSystem({ runner: nodeProcessRunner, log });
  const daemon = new NetworkDaemon({
    system,
    spawnEngine: options.spawnEngine ?? nodeEngineSpawner(log),
    enginePath: options.enginePath,
    owner: options.owner,
    version: options.version,
    log,
    readResolvConf: () => readFile(RESOLV_CONF_PATH, 'utf8'),
    pathKind,
  });
  await daemon.removeLeftovers();

  const server = new Server();
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  addNetworkToServer(server, daemon, log, () => stop());
  // The socket is born 0600 (umask 0177) rather than made so after bind: in between, another
  // local user could connect and ask for routes.
  const umask = process.umask(0o177);
  try {
    await bindServer(server, `unix:${options.socketPath}`);
  } finally {
    process.umask(umask);
  }
  chownSync(options.socketPath, options.owner.uid, options.owner.gid);
  chmodSync(options.socketPath, 0o600);
  log('info', `network daemon v${options.version} (pid ${process.pid}) for uid ${options.owner.uid} listening on ${options.socketPath}`);
  const onAbort = (): void => {
    void daemon.shutdown().finally(() => stop());
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted === true) onAbort();
  await stopped;
  options.signal?.removeEventListener('abort', onAbort);
  // Whatever ended us, nothing of ours stays up.
  await daemon.shutdown();
  await closeServer(server, options.socketPath);
  log('info', 'network daemon stopped');
}
