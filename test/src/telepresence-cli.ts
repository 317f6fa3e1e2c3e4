/**
 * Runs the product's CLI the way a user does: `kubectl telepresence ...`, found by kubectl's
 * plugin discovery on a PATH that starts with the build's `dist/bin`. Each instance has its own
 * runtime folder, so its daemon (socket, logs) is separate from any other test's or the user's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { daemonLogPath } from '@telepresence-ts/core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCommandLine, processRunner, type LongRunning, type ProcessRunner, type RunResult } from './process-runner.js';

export interface TelepresenceCliOptions {
  readonly repoRoot: string;
  readonly kubeconfig: string;
  /** Passed as --namespace to every command unless the call names its own. */
  readonly namespace?: string;
  readonly runner?: ProcessRunner;
  /**
   * Whether `connect` brings outbound access up (default false: adds --outbound=false). This
   * machine is the cluster's node: its root network namespace already routes the pod and service
   * subnets to the cluster's bridge, and outbound access rightly refuses to take them over there.
   * The outbound suites run the workstation in a network namespace of its own instead.
   */
  readonly outbound?: boolean;
  /**
   * The folder whose `kubectl-telepresence` kubectl finds (default the build's `dist/bin`), e.g.
   * the bin folder of an npm prefix the packed CLI was installed into. Any `dist/bin` of the
   * repository is kept off PATH then, so that only this one can be found.
   */
  readonly binDir?: string;
  /** Folders put first on PATH, e.g. that of another Node.js, which the CLI's shim then runs. */
  readonly pathFirst?: readonly string[];
}

export class TelepresenceCliError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    super(
      `kubectl telepresence ${formatCommandLine('', [...args]).trim()} exited ${String(result.exitCode)}` +
        `${result.timedOut ? ' (timed out)' : ''}:\n${result.stdout}${result.stderr}`,
    );
    this.name = 'TelepresenceCliError';
  }
}

export interface TelepresenceCli {
  /** The folder holding this instance's daemon socket and logs. */
  readonly runtimeDir: string;
  /** Runs a command; resolves with the result whatever the exit status. */
  run(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Runs a command that must succeed; returns stdout. */
  ok(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** Starts a command that keeps running until stopped (`watch`). */
  start(args: readonly string[]): LongRunning;
  /** Runs a command with `--output json` that must succeed; returns the parsed stdout. */
  json<T>(args: readonly string[], timeoutMs?: number): Promise<T>;
  /** The end (up to `chars`) of this instance's daemon log; '' while there is none. */
  daemonLog(chars?: number): string;
  /** Stops this instance's daemon (if any) and removes its runtime folder. */
  dispose(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 180_000;

export function createTelepresenceCli(options: TelepresenceCliOptions): TelepresenceCli {
  const runner = options.runner ?? processRunner;
  const runtimeDir = mkdtempSync(join(tmpdir(), 'tp-cli-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [
      ...(options.pathFirst ?? []),
      options.binDir ?? join(options.repoRoot, 'dist', 'bin'),
      ...(process.env['PATH'] ?? '').split(':').filter((d) => d !== '' && (options.binDir === undefined || d !== join(options.repoRoot, 'dist', 'bin'))),
    ].join(':'),
    KUBECONFIG: options.kubeconfig,
    // The daemon's socket and logs live here (see core's daemon paths).
    XDG_RUNTIME_DIR: runtimeDir,
    XDG_CACHE_HOME: join(runtimeDir, 'cache'),
  };
  const withNamespace = (args: readonly string[]): string[] =>
    options.namespace !== undefined && !args.some((a) => a === '--namespace' || a.startsWith('--namespace=') || a === '-n')
      ? [...args, '--namespace', options.namespace]
      : [...args];

  const withOutbound = (args: string[]): string[] =>
    options.outbound !== true && args[0] === 'connect' && !args.some((a) => a.startsWith('--outbound')) ? [...args, '--outbound=false'] : args;

  const run = (args: readonly string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RunResult> =>
    runner.run('kubectl', ['telepresence', ...withOutbound(withNamespace(args))], { env, timeoutMs });

  const ok = async (args: readonly string[], timeoutMs?: number): Promise<string> => {
    const result = await run(args, timeoutMs);
    if (result.exitCode !== 0 || result.timedOut) throw new TelepresenceCliError(args, result);
    return result.stdout;
  };

  return {
    runtimeDir,
    run,
    ok,
    start: (args) => runner.start('kubectl', ['telepresence', ...withNamespace(args)], { env }),
    async json<T>(args: readonly string[], timeoutMs?: number): Promise<T> {
      const out = await ok([...args, '--output', 'json'], timeoutMs);
      try {
        return JSON.parse(out) as T;
      } catch {
        throw new Error(`kubectl telepresence ${args.join(' ')} --output json printed no JSON:\n${out}`);
      }
    },
    daemonLog(chars = 6000): string {
      try {
        return readFileSync(daemonLogPath(env), 'utf8').slice(-chars);
      } catch {
        return '';
      }
    },
    async dispose(): Promise<void> {
      await run(['quit'], 30_000);
      rmSync(runtimeDir, { recursive: true, force: true });
    },
  };
}

/**
 * `install` with `cli` (which waits for both Deployments), then the traffic-manager's rollout to
 * its end, so that no pod of an earlier version is still answering: what a suite does before it
 * connects. `kubectl` runs with the suite's kubeconfig.
 */
export async function installManager(cli: TelepresenceCli, kubectl: (args: readonly string[], options: { timeoutMs: number }) => Promise<unknown>, managerNamespace = 'tp-system'): Promise<void> {
  await cli.ok(['install'], 300_000);
  await kubectl(['-n', managerNamespace, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=120s'], { timeoutMs: 130_000 });
}
