/** The node:child_process adapter of `ProcessRunner` (the client's one place that spawns helpers and user commands). */
import { spawn } from 'node:child_process';
import type { ProcessExit, ProcessRunner, RunOutput, RunningProcess, StartOptions } from './process-runner.js';

/** Output kept of a helper, for error messages: its last 64 KiB. */
const MAX_CAPTURE = 64 * 1024;

function startProcess(command: string, args: readonly string[], options: StartOptions): RunningProcess {
  let captured = '';
  const child = spawn(command, [...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: options.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk: Buffer): void => {
    captured = (captured + chunk.toString('utf8')).slice(-MAX_CAPTURE);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const forward = (signal: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const signals: NodeJS.Signals[] = options.forwardSignals === true ? ['SIGINT', 'SIGTERM'] : [];
  for (const s of signals) process.on(s, forward);
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      // A failed spawn emits 'error' and no 'close'; an error of a running child is followed by 'close'.
      if (child.pid === undefined) resolve({ exitCode: null, signal: null, startError: err });
    });
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
  }).finally(() => {
    for (const s of signals) process.off(s, forward);
  });
  return {
    pid: child.pid,
    exited,
    output: () => captured,
    kill: (signal = 'SIGTERM') => forward(signal),
  };
}

export const nodeProcessRunner: ProcessRunner = {
  start: startProcess,
  async run(command, args, options = {}): Promise<RunOutput> {
    let stdout = '';
    let stderr = '';
    const child = spawn(command, [...args], { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs);
    const exit = await new Promise<ProcessExit>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (child.pid === undefined) resolve({ exitCode: null, signal: null, startError: err });
      });
      child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    clearTimeout(timer);
    return { ...exit, stdout, stderr, timedOut };
  },
};
