/**
 * The one adapter in the test helpers that imports `node:child_process` (STYLE convention 2).
 * `kube.ts` runs kubectl through it and `certs.ts` runs openssl through it; unit tests hand those
 * modules a fake `ProcessRunner` instead.
 */
import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string;
  /** The child is killed (SIGKILL) after this long; the result then has `timedOut: true`. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** null when the child was ended by a signal. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** A child process that keeps running (e.g. `kubectl port-forward`) until `stop()`. */
export interface LongRunning {
  /** `command args...`, for messages. */
  readonly commandLine: string;
  /**
   * Resolves with the first match of `pattern` in everything the child has printed so far
   * (stdout and stderr together). Rejects, with the output, if the child exits first or
   * `timeoutMs` passes.
   */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** stdout and stderr so far, interleaved in arrival order. */
  output(): string;
  /** True once the child has exited. */
  exited(): boolean;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/** The port: run a command to completion, or start one that keeps running. */
export interface ProcessRunner {
  /** Resolves for any exit status; rejects only when the command cannot be started at all. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  start(command: string, args: readonly string[], options?: StartOptions): LongRunning;
}

/** Shown in error messages; quotes arguments that contain spaces or shell metacharacters. */
export function formatCommandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// A stopped child gets this long to exit on SIGTERM before we SIGKILL it.
const STOP_GRACE_MS = 5_000;

function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(command, [...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs);
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${formatCommandLine(command, args)}: ${err.message}`, { cause: err }));
    });
    child.on('close', (exitCode, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout, stderr, exitCode, signal, timedOut });
    });
    // A child that exits without reading stdin makes the write fail with EPIPE; the exit status
    // is what tells the caller what happened, so the write error itself is ignored.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

function start(command: string, args: readonly string[], options: StartOptions = {}): LongRunning {
  const commandLine = formatCommandLine(command, args);
  const child = spawn(command, [...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let exitInfo: string | undefined;
  const listeners = new Set<() => void>();
  const notify = (): void => listeners.forEach((l) => l());
  const exited = new Promise<void>((resolve) => {
    child.on('close', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with status ${String(code)}`;
      notify();
      resolve();
    });
    child.on('error', (err) => {
      exitInfo = `could not start: ${err.message}`;
      notify();
      resolve();
    });
  });
  const onData = (chunk: string): void => {
    output += chunk;
    notify();
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);

  return {
    commandLine,
    output: () => output,
    exited: () => exitInfo !== undefined,
    waitForOutput(pattern, timeoutMs) {
      return new Promise<RegExpMatchArray>((resolve, reject) => {
        const finish = (): void => {
          listeners.delete(check);
          clearTimeout(timer);
        };
        const check = (): void => {
          const match = output.match(pattern);
          if (match) {
            finish();
            resolve(match);
          } else if (exitInfo !== undefined) {
            finish();
            reject(new Error(`${commandLine} ${exitInfo} before printing ${String(pattern)}; output:\n${output}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`${commandLine} did not print ${String(pattern)} within ${timeoutMs} ms; output:\n${output}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (exitInfo !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The real runner, built on `node:child_process`. */
export const processRunner: ProcessRunner = { run, start };
