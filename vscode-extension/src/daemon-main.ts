/**
 * The daemon the extension starts when none is running: the same core daemon the CLI runs with
 * `daemon-foreground`, bundled as dist/daemon.js so that the .vsix needs no CLI on PATH. It serves
 * the same socket, so the CLI and the extension share it whichever of them started it.
 */
import { VERSION, createKubeApi, daemonLogPath, daemonSocketPath, runDaemon } from '@telepresence-ts/core';

const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
process.once('SIGINT', () => stop.abort());
runDaemon({ socketPath: daemonSocketPath(), logPath: daemonLogPath(), version: VERSION, kubeFactory: createKubeApi, signal: stop.signal }).then(
  // The daemon has stopped serving; keep-alive sockets of the Kubernetes client must not keep it alive.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`telepresence daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
