/** The child_process adapter behind `CommandRunner` (the only cluster file spawning processes). */
import { execFile, spawn } from 'node:child_process';
import type { CommandRunner } from './iptables-init.js';

// iptables takes milliseconds; a minute means the xtables lock is stuck.
const TIMEOUT_MS = 60_000;

/** Runs commands without a shell, collecting stderr; a missing binary gives exit code null. */
export const commandRunner: CommandRunner = {
  run: (command, args) =>
    new Promise((resolve) => {
      execFile(command, [...args], { timeout: TIMEOUT_MS }, (err, _stdout, stderr) => {
        if (err === null) return resolve({ exitCode: 0, stderr });
        const code = typeof err.code === 'number' ? err.code : null;
        resolve({ exitCode: code, stderr: stderr === '' ? err.message : stderr });
      });
    }),
};

/** A process whose standard streams the caller uses (the agent's sftp-server per connection). */
export interface PipedProcess {
  readonly stdin: NodeJS.WritableStream;
  readonly stdout: NodeJS.ReadableStream;
  readonly stderr: NodeJS.ReadableStream;
  /** Resolves with the exit code (null when killed by a signal or when it could not start). */
  readonly exited: Promise<{ readonly exitCode: number | null; readonly error: Error | undefined }>;
  kill(): void;
}

/** Starts `command` without a shell, its stdin, stdout and stderr piped to the caller. */
export function spawnPiped(command: string, args: readonly string[]): PipedProcess {
  const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<{ exitCode: number | null; error: Error | undefined }>((resolve) => {
    let error: Error | undefined;
    child.once('error', (err) => {
      error = err;
      // A spawn failure (ENOENT) emits no 'close' when nothing was started.
      if (child.pid === undefined) resolve({ exitCode: null, error });
    });
    child.once('close', (code) => resolve({ exitCode: code, error }));
  });
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
