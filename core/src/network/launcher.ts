/**
 * Starting the network daemon as a detached process (by a root user daemon, or by
 * `network-daemon` without --foreground): it is the CLI bundle itself, run with the verb
 * `network-daemon --foreground`, so there is one artifact to ship.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/** Starts a network daemon in the background; returns at once (the caller polls the socket). */
export type NetworkDaemonLauncher = () => void;

/** `cliPath` is the CLI bundle (absolute); the daemon serves `ownerUid` and logs to `logPath`. */
export function detachedNetworkDaemonLauncher(cliPath: string, logPath: string, ownerUid: number, env: NodeJS.ProcessEnv = process.env): NetworkDaemonLauncher {
  return () => {
    mkdirSync(dirname(logPath), { recursive: true, mode: 0o700 });
    // The daemon logs to this file itself; stdout/stderr go there too, to keep a crash's stack.
    const fd = openSync(logPath, 'a', 0o600);
    try {
      const child = spawn(process.execPath, [cliPath, 'network-daemon', '--foreground', '--owner', String(ownerUid)], {
        detached: true,
        stdio: ['ignore', fd, fd],
        env,
        // Not the caller's folder: a daemon must not keep a mount busy.
        cwd: '/',
      });
      child.unref();
    } finally {
      closeSync(fd);
    }
  };
}
