/**
 * The daemon the extension starts when none is running: the same core daemon the CLI runs with
 * `daemon-foreground`, bundled as dist/daemon.js so that the .vsix needs no CLI on PATH for
 * intercepts. It serves the same socket, so the CLI and the extension share it whichever of them
 * started it. Outbound access does need the CLI (its network daemon): see cli-bundle.ts.
 */
import { VERSION, createKubeApi, daemonLogPath, daemonSocketPath, runDaemon } from '@telepresence-ts/core';
import { realpathSync, statSync } from 'node:fs';
import { findCliBundle } from './cli-bundle.js';

const cliPath = findCliBundle(process.env['PATH'] ?? '', {
  realpath: (path) => {
    try {
      return realpathSync(path);
    } catch {
      return undefined;
    }
  },
  isFile: (path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  },
});
if (cliPath === undefined) {
  process.stderr.write('telepresence daemon: no kubectl-telepresence on PATH, so connections have no outbound access (intercepts only)\n');
}

const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
process.once('SIGINT', () => stop.abort());
runDaemon({ socketPath: daemonSocketPath(), logPath: daemonLogPath(), version: VERSION, kubeFactory: createKubeApi, signal: stop.signal, cliPath }).then(
  // The daemon has stopped serving; keep-alive sockets of the Kubernetes client must not keep it alive.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`telepresence daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
