/**
 * The node:child_process adapter of `EngineSpawner`: starts the packet engine, which drops to the
 * owner's user and group itself (`--run-as`), with stdin a pipe that only this process holds.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../daemon/logger.js';
import type { ProcessExit } from '../process/process-runner.js';
import { engineArgs, type EngineProcess, type EngineSpawner } from './engine.js';

/** Kept of the engine's stderr for an error message. */
const MAX_STDERR = 16 * 1024;
/** The engine closes its stack and exits at once on SIGTERM; this bounds a wedged one. */
const STOP_GRACE_MS = 3_000;

export function nodeEngineSpawner(log: Logger): EngineSpawner {
  return (spec) => {
    // Started as root, not with spawn's uid/gid: many hosts make /dev/net/tun mode 0600, so a
    // process that is already the owner cannot open it, not even to attach to a device it owns.
    // The engine opens the device as root and then drops to the owner for good (no groups, no
    // capabilities) before it handles a packet; it exits with an error if it cannot.
    const child = spawn(spec.command, engineArgs(spec), {
      // Root's environment is none of the engine's business; it needs nothing from it.
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      cwd: '/',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // The engine may exit before we close its stdin: a write-side EPIPE is no error of ours.
    child.stdin.on('error', () => undefined);
    let stderr = '';
    let markReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.trim() === 'ready') markReady();
      else log('debug', `engine: ${line}`);
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderr = `${stderr}${line}\n`.slice(-MAX_STDERR);
      log('info', `engine: ${line}`);
    });
    const exited = new Promise<ProcessExit>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        // A failed spawn emits 'error' and no 'close'.
        if (child.pid === undefined) resolve({ exitCode: null, signal: null, startError: err });
      });
      child.once('close', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    const running = (): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
    const handle: EngineProcess = {
      pid: child.pid,
      ready,
      exited,
      stderr: () => stderr,
      async stop() {
        child.stdin.end();
        if (running()) child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (running()) child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      },
    };
    return handle;
  };
}
