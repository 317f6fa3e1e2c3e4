/**
 * Composition root of the `kubectl-telepresence` binary: binds the real terminal, Kubernetes
 * adapter, daemon socket and launcher, then hands the command line to the CLI. The only place in
 * the plugin that touches `process`.
 */
import {
  VERSION,
  createKubeApi,
  daemonLogPath,
  daemonSocketPath,
  detachedDaemonLauncher,
  findExecutable,
  localPortRefuses,
  nodeProcessRunner,
  openDaemon,
  runDaemon,
  systemClock,
} from '@telepresence-ts/core';
import { resolve } from 'node:path';
import { hideBin } from 'yargs/helpers';
import { run } from './cli.js';
import type { CommandDeps } from './command-deps.js';
import type { Io } from './io.js';

const io: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const socketPath = daemonSocketPath();
const logPath = daemonLogPath();
// The daemon is this same bundle run with the hidden verb; argv[1] is its path.
const cliPath = process.argv[1] ?? '';

const deps: CommandDeps = {
  io,
  version: VERSION,
  clock: systemClock,
  env: { kubeconfig: process.env.KUBECONFIG, cwd: process.cwd() },
  kube: createKubeApi,
  processes: nodeProcessRunner,
  processEnv: process.env,
  localPortRefuses,
  findExecutable: (command) => findExecutable(command, process.env, process.cwd()),
  daemon: ({ start }) => openDaemon({ socketPath, logPath, start: start ? detachedDaemonLauncher(cliPath, logPath) : undefined }),
  onInterrupt: (fn) => {
    const handler = (): void => {
      off();
      fn();
    };
    const off = (): void => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
    return off;
  },
  runDaemon: async () => {
    const stop = new AbortController();
    process.once('SIGTERM', () => stop.abort());
    process.once('SIGINT', () => stop.abort());
    await runDaemon({ socketPath, logPath, version: VERSION, kubeFactory: createKubeApi, signal: stop.signal, cliPath: resolve(cliPath) });
  },
};

const args = hideBin(process.argv);
// exitCode rather than exit(): stdout may still be draining into a pipe.
process.exitCode = await run(args, deps);
if (args[0] === 'daemon-foreground' || args[0] === 'network-daemon') {
  // The daemon has stopped serving; keep-alive sockets of the Kubernetes client must not keep it alive.
  process.exit();
}
