import { TpError, VERSION, nodeProcessRunner, systemClock, type Clock } from '@telepresence-ts/core';
import {
  GrpcNetworkClient,
  NETWORK_DAEMON_START_TIMEOUT_MS,
  detachedNetworkDaemonLauncher,
  networkDaemonLogPath,
  networkSocketPath,
  pingNetworkDaemon,
  primaryGroupOf,
  runNetworkDaemon,
} from '@telepresence-ts/core/network';
import { dirname, join, resolve } from 'node:path';
import type { CommandDeps } from '../command-deps.js';
import type { GlobalOptions } from '../global-options.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface NetworkDaemonArgs extends GlobalOptions {
  owner: number | undefined;
  foreground: boolean;
  stop: boolean;
}

/**
 * What this verb needs of the machine. The verb is its own entry point (a root process, apart
 * from the user's commands), so it composes its adapters here; tests pass a fake.
 */
export interface NetworkDaemonHost {
  readonly euid: number;
  /** The default owner: $SUDO_UID (who ran sudo), else the current uid. */
  readonly defaultOwner: number;
  readonly socketPath: string;
  readonly logPath: string;
  readonly clock: Clock;
  ownerGid(uid: number): Promise<number>;
  /** Serves in this process until Quit, SIGINT or SIGTERM. */
  serve(owner: { uid: number; gid: number }): Promise<void>;
  /** Starts `network-daemon --foreground` detached; returns at once. */
  launch(ownerUid: number): void;
  ping(): Promise<boolean>;
  quit(): Promise<void>;
}

/** The real host: this process, its environment and the CLI bundle it runs from. */
export function processNetworkDaemonHost(): NetworkDaemonHost {
  const env = process.env;
  // The CLI bundle (dist/kubectl-telepresence.js); the engine sits beside its shim, in dist/bin.
  const cliPath = resolve(process.argv[1] ?? '');
  const socketPath = networkSocketPath(env);
  const logPath = networkDaemonLogPath();
  const sudoUid = Number(env.SUDO_UID);
  return {
    euid: process.geteuid?.() ?? -1,
    defaultOwner: env.SUDO_UID !== undefined && env.SUDO_UID !== '' && Number.isInteger(sudoUid) ? sudoUid : (process.getuid?.() ?? -1),
    socketPath,
    logPath,
    clock: systemClock,
    ownerGid: (uid) => primaryGroupOf(uid, env, nodeProcessRunner),
    serve: async (owner) => {
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        await runNetworkDaemon({ socketPath, logPath, version: VERSION, owner, enginePath: join(dirname(cliPath), 'bin', 'tp-netstack'), signal: stop.signal });
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    },
    launch: (ownerUid) => detachedNetworkDaemonLauncher(cliPath, logPath, ownerUid, env)(),
    ping: () => pingNetworkDaemon(socketPath),
    quit: async () => {
      const client = new GrpcNetworkClient(socketPath);
      try {
        await client.quit();
      } finally {
        client.close();
      }
    },
  };
}

const POLL_MS = 100;

/** `network-daemon`: the root half of outbound access, for users who do not run as root. */
export function networkDaemonCommand(deps: CommandDeps, makeHost: () => NetworkDaemonHost = processNetworkDaemonHost): AnyCommand {
  return defineCommand<NetworkDaemonArgs>({
    command: 'network-daemon',
    describe: 'Run the root daemon that gives connect its network device, routes and DNS redirect (run it with sudo)',
    builder: (y) =>
      y
        .options({
          owner: { type: 'number', describe: 'The uid allowed to use it (default: $SUDO_UID, else your uid)' },
          foreground: { type: 'boolean', default: false, describe: 'Serve in this process instead of starting in the background' },
          stop: { type: 'boolean', default: false, describe: 'Stop the running network daemon (after it takes down what it set up)' },
        })
        .example('sudo $0 network-daemon', 'start it for the user who ran sudo, then run `kubectl telepresence connect` as that user')
        .example('$0 network-daemon --stop', 'stop it (its owner or root)')
        .epilogue(
          "Outbound access (reaching the cluster's Services, pods and DNS names from this workstation) needs a TUN device, routes and a DNS redirect, which only root may set up. " +
            "When the daemon runs as root, connect starts this daemon itself; everyone else starts it once with sudo and then connects as themselves. " +
            'It serves only its owner, on a socket no other user can open, and runs the packet engine as the owner, never as root. ' +
            '`kubectl telepresence quit` takes down the device, routes and redirect it set up; `network-daemon --stop` stops the daemon itself.',
        ),
    handler: async (argv) => {
      const host = makeHost();
      if (argv.stop) {
        const running = await host.ping();
        if (running) await host.quit();
        print(deps.io, argv.output, { stopped: running, socket: host.socketPath }, () => (running ? 'Network daemon stopped\n' : 'Network daemon was not running\n'));
        return;
      }
      if (host.euid !== 0) {
        throw new TpError('config', 'needs-root', 'network-daemon must run as root: run it with sudo (sudo kubectl telepresence network-daemon)');
      }
      const uid = argv.owner ?? host.defaultOwner;
      if (!Number.isInteger(uid) || uid < 0) {
        throw new TpError('user', 'bad-owner', `--owner ${String(argv.owner)} is not a uid`, { hint: 'give a numeric user id, e.g. --owner 1000 (see `id -u`)' });
      }
      if (argv.foreground) {
        await host.serve({ uid, gid: await host.ownerGid(uid) });
        return;
      }
      let started = false;
      if (!(await host.ping())) {
        host.launch(uid);
        const deadline = host.clock.now() + NETWORK_DAEMON_START_TIMEOUT_MS;
        while (!(await host.ping())) {
          if (host.clock.now() >= deadline) {
            throw new TpError('internal', 'network-daemon-start-failed', `the network daemon did not start listening on ${host.socketPath}`, { hint: `see ${host.logPath}` });
          }
          await host.clock.sleep(POLL_MS);
        }
        started = true;
      }
      print(deps.io, argv.output, { socket: host.socketPath, owner: uid, started }, () =>
        started ? `Network daemon for uid ${uid} listening on ${host.socketPath}\n` : `A network daemon already listens on ${host.socketPath}\n`,
      );
    },
  });
}
