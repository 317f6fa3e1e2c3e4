/** The child_process adapter behind `CommandRunner` (the only cluster file spawning processes). */
import { execFile } from 'node:child_process';
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
