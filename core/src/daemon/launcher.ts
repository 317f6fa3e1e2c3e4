/**
 * Starting the daemon as a detached process: the one file of core that imports
 * node:child_process. The daemon is the CLI bundle itself, run with the hidden verb
 * `daemon-foreground`, so there is one artifact to ship.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Starts a daemon in the background; returns at once (the caller polls the socket). */
export type DaemonLauncher = () => void;

export function detachedDaemonLauncher(cliPath: string, logPath: string, extraArgs: readonly string[] = []): DaemonLauncher {
  return () => {
    mkdirSync(dirname(logPath), { recursive: true, mode: 0o700 });
    // The daemon logs to this file itself; stdout/stderr go there too, to keep a crash's stack.
    const fd = openSync(logPath, 'a');
    try {
      // No --enable-source-maps: parsing the map would delay every connect (NODE_OPTIONS may add it).
      const child = spawn(process.execPath, [cliPath, 'daemon-foreground', ...extraArgs], {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: process.env,
      });
      child.unref();
    } finally {
      closeSync(fd);
    }
  };
}
