/**
 * The daemon the extension starts when none is running: the same core daemon the CLI runs with
 * `daemon-foreground`, bundled as dist/daemon.js so that the .vsix needs no CLI on PATH for
 * intercepts. It serves the same socket, so the CLI and the extension share it whichever of them
 * started it. Outbound access does need the CLI of the same version (its network daemon): see
 * cli-bundle.ts.
 */
import { VERSION, createKubeApi, daemonLogPath, daemonSocketPath, runDaemon } from '@telepresence-ts/core';
import { CLI_PATH_ENV, describeCliLookup, findCli } from './cli-bundle.js';
import { nodeCliLookupFs } from './cli-lookup-fs.js';

const cli = findCli({ pathEnv: process.env['PATH'] ?? '', setting: process.env[CLI_PATH_ENV], version: VERSION }, nodeCliLookupFs);
// stderr goes to the daemon's log (child-processes.ts), before runDaemon opens it for its own lines.
process.stderr.write(`telepresence daemon: ${describeCliLookup(cli)}\n`);
const cliPath = cli.found?.bundle;

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
