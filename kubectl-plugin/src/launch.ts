/**
 * `intercept ... -- <command>` and `--docker-run -- <docker run args>`: runs a process with the
 * intercepted container's environment (and volumes), for as long as the intercept lasts. When the
 * process exits, the intercept is left; when the intercept ends (leave, quit, a lost session), the
 * process is stopped.
 */
import {
  INTERCEPT_ENV,
  TpError,
  type DaemonApi,
  type InterceptOptions,
  type InterceptOutcome,
  type InterceptRemote,
  type ProcessRunner,
  type RunningProcess,
} from '@telepresence-ts/core';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';

/** What to run: the user's command, or `docker run` with the user's arguments. */
export type Launch =
  | { readonly kind: 'command'; readonly argv: readonly string[] }
  | {
      readonly kind: 'docker';
      readonly argv: readonly string[];
      /** Where the volumes appear in the container; the local mount point's path by default. */
      readonly dockerMount: string | undefined;
    };

/** Thrown by a command whose exit status is its child's: `run` returns the code without printing. */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit status ${code}`);
    this.name = 'ExitStatus';
  }
}

/** A process ended by a signal exits the CLI as a shell would report it: 128 + the signal's number. */
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
/** `docker stop`'s grace before SIGKILL, in seconds. */
const DOCKER_STOP_SECONDS = 2;

/**
 * Where the container's network is: Docker's bridge, with the intercepted port published on the
 * workstation's loopback; or the workstation's own (`--network host`), where outbound access's
 * routes and DNS redirect reach it too, so that it calls the cluster's Services by name.
 */
export type DockerNetwork = 'bridge' | 'host';

/** Whether the user's `docker run` arguments choose a network themselves. */
export function choosesNetwork(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--network' || a === '--net' || a.startsWith('--network=') || a.startsWith('--net='));
}

/**
 * The network a `--docker-run` container gets. With outbound access up, the workstation's own,
 * unless the user chose one or the app's port in the pod differs from the intercept's local
 * port: on the host's network nothing can map one onto the other. `note` says why not, when not.
 */
export function dockerNetworkFor(outcome: InterceptOutcome, argv: readonly string[], outboundUp: boolean): { network: DockerNetwork; note?: string } {
  if (!outboundUp || choosesNetwork(argv)) return { network: 'bridge' };
  if (outcome.spec?.mode === 'replace') {
    const moved = outcome.spec.ports.filter((p) => p.localPort !== p.containerPort);
    if (moved.length === 0) return { network: 'host' };
    return {
      network: 'bridge',
      note:
        `the container runs on Docker's bridge, where it reaches the cluster's addresses but not its DNS names: ` +
        `the replace moves container port ${moved.map((p) => `${p.containerPort} to ${p.localPort}`).join(', ')}. Replace without --port to run it on this workstation's network instead`,
    };
  }
  const localPort = outcome.spec?.localPort ?? 0;
  const containerPort = outcome.target?.containerPort ?? 0;
  // An ingest has no port to map: the workstation's network, with outbound access's routes.
  if (localPort > 0 && containerPort > 0 && containerPort !== localPort) {
    return {
      network: 'bridge',
      note:
        `the container runs on Docker's bridge, where it reaches the cluster's addresses but not its DNS names: ` +
        `its app listens on ${containerPort}, the intercept on ${localPort}. Intercept with --port ${containerPort}:<service port> to run it on this workstation's network instead`,
    };
  }
  return { network: 'host' };
}

/** The `docker run` command line: the user's arguments with the environment, volumes and port wired in. */
export function dockerRunArgs(outcome: InterceptOutcome, launch: Extract<Launch, { kind: 'docker' }>, containerName: string, network: DockerNetwork = 'bridge'): string[] {
  const args = [...launch.argv];
  if (args.some((a) => a === '-d' || a === '--detach' || a === '--detach=true')) {
    throw new TpError('user', 'bad-usage', '--docker-run cannot run a detached container (-d): the intercept ends when the container does', {
      hint: 'drop -d; the container runs in the foreground for the length of the intercept',
    });
  }
  const remote = outcome.remote;
  const env = remote?.environment ?? {};
  const out = ['run', '--rm', '--name', containerName];
  // `-e NAME` without a value takes it from docker's own environment: no value is ever on a
  // command line (ps shows those) or needs quoting.
  for (const name of Object.keys(env).sort()) out.push('-e', name);
  const localPort = outcome.spec?.localPort ?? 0;
  const containerPort = outcome.target?.containerPort !== undefined && outcome.target.containerPort > 0 ? outcome.target.containerPort : localPort;
  if (network === 'host') {
    // The app listens on the workstation's own port, the intercept's (dockerNetworkFor checked
    // that it is the app's port in the pod); it shares the routes and DNS of outbound access.
    out.push('--network', 'host');
  } else if (outcome.spec?.mode === 'replace') {
    // Every port of the replaced container, each from its local port to its own number.
    for (const p of outcome.spec.ports) out.push('-p', `127.0.0.1:${p.localPort}:${p.containerPort}`);
  } else if (localPort > 0) {
    // The daemon dials the loopback, 127.0.0.1 first; the app listens on the port it has in the pod.
    out.push('-p', `127.0.0.1:${localPort}:${containerPort}`);
  }
  if (remote !== undefined && remote.mountPoint !== '') {
    out.push('-v', `${remote.mountPoint}:${launch.dockerMount ?? remote.mountPoint}`);
  }
  return [...out, ...args];
}

/** The environment docker (or the command) is started with. */
function processEnv(outcome: InterceptOutcome, launch: Launch, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...base, ...(outcome.remote?.environment ?? {}) };
  if (launch.kind === 'docker' && launch.dockerMount !== undefined && (outcome.remote?.mountPoint ?? '') !== '') {
    env[INTERCEPT_ENV.root] = launch.dockerMount;
  }
  return env;
}

export interface LaunchDeps {
  readonly processes: ProcessRunner;
  readonly env: NodeJS.ProcessEnv;
  /** For notes to the user (stderr). */
  readonly note?: (line: string) => void;
}

/**
 * Runs `launch` for the intercept and returns its exit code (128 + n for a signal). Leaves the
 * intercept when the process exits; stops the process when the intercept goes first.
 */
export async function runIntercepted(deps: LaunchDeps, daemon: DaemonApi, outcome: InterceptOutcome, launch: Launch): Promise<number> {
  const name = outcome.spec?.name ?? '';
  const containerName = `tp-${name}-${randomBytes(3).toString('hex')}`.slice(0, 63);
  let command: string;
  let args: string[];
  if (launch.kind === 'command') {
    const [first, ...rest] = launch.argv;
    if (first === undefined) throw new TpError('user', 'bad-usage', 'no command after --', { hint: 'kubectl telepresence intercept <workload> --port <port> -- <command> [args]' });
    command = first;
    args = rest;
  } else {
    command = 'docker';
    try {
      const outboundUp = (await daemon.status()).outbound?.state === 'up';
      const { network, note } = dockerNetworkFor(outcome, launch.argv, outboundUp);
      if (note !== undefined) deps.note?.(`note: ${note}`);
      args = dockerRunArgs(outcome, launch, containerName, network);
    } catch (err: unknown) {
      await leaveQuietly(daemon, name);
      throw err;
    }
  }
  const child: RunningProcess = deps.processes.start(command, args, { stdio: 'inherit', env: processEnv(outcome, launch, deps.env), forwardSignals: true });
  let interceptGone = false;
  const stop = (): void => {
    if (launch.kind === 'docker') {
      // The docker CLI is only a client: the container must be stopped at the daemon.
      void deps.processes.run('docker', ['stop', '-t', String(DOCKER_STOP_SECONDS), containerName], { timeoutMs: 30_000 });
    }
    child.kill('SIGTERM');
  };
  const unwatch = daemon.watchState(
    (snap) => {
      if (!interceptGone && !snap.intercepts.some((ii) => ii.spec?.name === name)) {
        interceptGone = true;
        stop();
      }
    },
    () => {
      // The daemon went away (quit): so did the intercept.
      interceptGone = true;
      stop();
    },
  );
  const exit = await child.exited;
  unwatch();
  if (!interceptGone) await leaveQuietly(daemon, name);
  if (exit.startError !== undefined) {
    const missing = exit.startError.code === 'ENOENT';
    throw new TpError('user', missing ? 'command-not-found' : 'command-failed', `cannot run ${command}: ${missing ? 'no such command' : exit.startError.message}`, {
      hint: missing ? (launch.kind === 'docker' ? 'install docker (Debian: apt-get install docker.io)' : `check the command after --; "${command}" is not on PATH`) : undefined,
    });
  }
  if (exit.exitCode !== null) return exit.exitCode;
  return 128 + (SIGNAL_NUMBERS[exit.signal ?? ''] ?? 0);
}

async function leaveQuietly(daemon: DaemonApi, name: string): Promise<void> {
  try {
    await daemon.leave(name);
  } catch (err: unknown) {
    // Gone already (the daemon removed it): nothing to leave.
    if ((err as TpError).code !== 'unknown-intercept') throw err;
  }
}

/** The intercept flags of the remote environment, volumes and process (yargs names). */
export interface RemoteArgs {
  'env-file'?: string | undefined;
  'env-json'?: string | undefined;
  /** `true` unless given. */
  mount?: string | undefined;
  'docker-run'?: boolean | undefined;
  'docker-mount'?: string | undefined;
  /** What follows `--`: the command to run (or docker run's arguments). */
  '--'?: Array<string | number> | undefined;
}

/** yargs declarations of RemoteArgs, for the intercept command's builder. */
export const remoteOptions = {
  'env-file': { alias: 'e', type: 'string', describe: "Write the container's environment to this file (dotenv syntax)" },
  'env-json': { alias: 'j', type: 'string', describe: "Write the container's environment to this file as a JSON object" },
  mount: { type: 'string', default: 'true', describe: "Mount the container's volumes: true (a temporary directory), false, or an empty directory" },
  'docker-run': { type: 'boolean', default: false, describe: 'Run a container (docker run, its arguments after --) with the environment, volumes and port' },
  'docker-mount': { type: 'string', describe: 'With --docker-run: where the volumes appear in the container (default: the local mount path)' },
} as const;

/**
 * `--mount true|false|<dir>` as the daemon takes it; a relative directory is resolved here, since
 * the daemon runs elsewhere.
 */
export function parseMountFlag(value: string, cwd: string): { mount: boolean; mountPoint: string } {
  if (value === 'false') return { mount: false, mountPoint: '' };
  if (value === 'true' || value === '') return { mount: true, mountPoint: '' };
  return { mount: true, mountPoint: resolve(cwd, value) };
}

/** The remote part of the daemon's request: mount and env files, paths made absolute. */
export function interceptOptions(argv: RemoteArgs, cwd: string): InterceptOptions {
  const abs = (p: string | undefined): string => (p === undefined || p === '' ? '' : resolve(cwd, p));
  return {
    ...parseMountFlag(argv.mount ?? 'true', cwd),
    envFile: abs(argv['env-file']),
    envJson: abs(argv['env-json']),
    // The container of --docker-run runs as its image's user, not as the one who mounted.
    mountAllowOther: argv['docker-run'] === true,
  };
}

/**
 * Refuses, before anything in the cluster changes, a launch whose program cannot be found: the
 * command after `--`, or docker for `--docker-run`.
 */
export function checkLaunchable(launch: Launch | undefined, findExecutable: (command: string) => string | undefined): void {
  if (launch === undefined) return;
  const program = launch.kind === 'docker' ? 'docker' : launch.argv[0];
  if (program === undefined || program === '') throw new TpError('user', 'bad-usage', 'no command after --', { hint: 'kubectl telepresence intercept <workload> --port <port> -- <command> [args]' });
  if (findExecutable(program) !== undefined) return;
  if (launch.kind === 'docker') {
    throw new TpError('user', 'command-not-found', '--docker-run needs the docker CLI, which is not on PATH', { hint: 'install Docker, or run the process yourself with `-- <command>`' });
  }
  throw new TpError('user', 'command-not-found', `cannot run ${program}: ${program.includes('/') ? 'no executable file there' : 'not found on PATH'}`, {
    hint: 'check the command after --, or give its full path',
  });
}

/** The process to start once the intercept is active, if any. */
export function launchOf(argv: RemoteArgs): Launch | undefined {
  const rest = (argv['--'] ?? []).map(String);
  if (argv['docker-run'] === true) {
    if (rest.length === 0) {
      throw new TpError('user', 'bad-usage', '--docker-run needs the arguments of docker run after --', {
        hint: 'kubectl telepresence intercept <workload> --port <port> --docker-run -- <image> [args]',
      });
    }
    return { kind: 'docker', argv: rest, dockerMount: argv['docker-mount'] };
  }
  if (argv['docker-mount'] !== undefined) throw new TpError('user', 'bad-usage', '--docker-mount goes with --docker-run', { hint: 'add --docker-run, or drop --docker-mount' });
  return rest.length > 0 ? { kind: 'command', argv: rest } : undefined;
}

/** The mount and files, for `--output json` (the values stay in the files). */
export function remoteJson(remote: InterceptRemote | undefined): { mountPoint: string; mounts: string[]; envFile: string; envJson: string; traffic: string; trafficReason?: string } {
  return {
    mountPoint: remote?.mountPoint ?? '',
    mounts: remote?.mounts ?? [],
    envFile: remote?.envFile ?? '',
    envJson: remote?.envJson ?? '',
    traffic: remote?.traffic ?? '',
    ...(remote !== undefined && remote.trafficReason !== '' ? { trafficReason: remote.trafficReason } : {}),
  };
}

/** Where the intercept's connections come through, with the reason when it is the slower path. */
function trafficText(remote: InterceptRemote): string | undefined {
  if (remote.traffic === 'direct') return "direct from the agent's pod";
  if (remote.traffic === 'relayed') return `relayed by the traffic-manager (${remote.trafficReason})`;
  return undefined;
}

/** The lines added to the intercept's text output. */
export function formatRemoteText(remote: InterceptRemote | undefined): string {
  if (remote === undefined) return '';
  const mount = remote.mountPoint !== '' ? remote.mountPoint : remote.mounts.length > 0 ? '(not mounted)' : '(no volumes)';
  const lines = [`   Volume mount   : ${mount}`];
  const traffic = trafficText(remote);
  if (traffic !== undefined) lines.push(`   Traffic        : ${traffic}`);
  if (remote.envFile !== '') lines.push(`   Env file       : ${remote.envFile}`);
  if (remote.envJson !== '') lines.push(`   Env JSON       : ${remote.envJson}`);
  return lines.join('\n') + '\n';
}
