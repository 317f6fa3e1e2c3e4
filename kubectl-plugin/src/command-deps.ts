import type { Clock, DaemonApi, KubeApiFactory, ProcessRunner } from '@telepresence-ts/core';
import type { Io } from './io.js';

/** What every command module may use; built once by main.ts and handed to each command. */
export interface CommandDeps {
  readonly io: Io;
  /** The client's version (core's VERSION in production, a fixed string in tests). */
  readonly version: string;
  /**
   * A client of the running daemon. With `start`, a daemon is launched when none answers;
   * without, undefined means "no daemon".
   */
  readonly daemon: (options: { start: boolean }) => Promise<DaemonApi | undefined>;
  /** The Kubernetes API for a set of kubectl flags (install and uninstall talk to it directly). */
  readonly kube: KubeApiFactory;
  readonly clock: Clock;
  /** The caller's $KUBECONFIG and working directory: the daemon must resolve kube flags as this shell would. */
  readonly env: { readonly kubeconfig: string | undefined; readonly cwd: string };
  /** Starts the user's `-- command` (or docker) of an intercept. */
  readonly processes: ProcessRunner;
  /** The environment a started command inherits (the caller's, plus the intercept's). */
  readonly processEnv: NodeJS.ProcessEnv;
  /** Where the program a shell would run for `command` is (on processEnv's PATH, or a path from env.cwd); undefined when there is none. */
  readonly findExecutable: (command: string) => string | undefined;
  /** Whether nothing listens on this port of the loopback (IPv4 or IPv6), which `intercept` warns of. */
  readonly localPortRefuses: (port: number) => Promise<boolean>;
  /** Calls `fn` once on Ctrl-C (SIGINT) or SIGTERM; the returned function stops listening. */
  readonly onInterrupt: (fn: () => void) => () => void;
  /** Runs the daemon in this process until it quits (the hidden `daemon-foreground`). */
  readonly runDaemon: () => Promise<void>;
}
