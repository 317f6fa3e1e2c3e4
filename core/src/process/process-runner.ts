/**
 * The `ProcessRunner` port: how the client starts other programs (sshfs, fusermount, the user's
 * `-- command`, docker). Only node-process-runner.ts implements it with node:child_process; tests
 * pass fakes or the real one.
 */

/** How a process ended. `exitCode` is null when a signal ended it or it could not start. */
export interface ProcessExit {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Set when the program could not be started (ENOENT: not found, EACCES: not executable). */
  readonly startError?: NodeJS.ErrnoException | undefined;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Killed (SIGKILL) after this long; the result then has `timedOut`. */
  readonly timeoutMs?: number;
}

export interface RunOutput extends ProcessExit {
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /**
   * `inherit`: the process shares this terminal (the user's command); `capture`: stdout and
   * stderr are collected for `output()` (a helper such as sshfs, whose errors we report).
   */
  readonly stdio: 'inherit' | 'capture';
  /**
   * While it runs, SIGINT and SIGTERM sent to this process are passed to it instead of ending
   * this process, so that the caller can clean up after it exits.
   */
  readonly forwardSignals?: boolean;
}

export interface RunningProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  /** What it wrote so far (capture only). */
  output(): string;
  /** Sends a signal (SIGTERM by default); a no-op once it has exited. */
  kill(signal?: NodeJS.Signals): void;
}

export interface ProcessRunner {
  /** Runs to completion and collects the output. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunOutput>;
  /** Starts a long-running process. */
  start(command: string, args: readonly string[], options: StartOptions): RunningProcess;
}
