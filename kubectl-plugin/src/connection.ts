/** Getting a connected daemon for the commands that need the cluster (list, intercept, ...). */
import { delimiter, resolve } from 'node:path';
import { ConnectionState, DEFAULT_MANAGER_NAMESPACE, OUTBOUND_FAILURE_CODES, TpError, type ConnectionStatus, type DaemonApi } from '@telepresence-ts/core';
import type { OutboundRequest } from '@telepresence-ts/core';

import type { CommandDeps } from './command-deps.js';
import type { GlobalOptions } from './global-options.js';

/** Declared on connect, install and uninstall. */
export const managerNamespaceOption = {
  'manager-namespace': {
    type: 'string',
    default: DEFAULT_MANAGER_NAMESPACE,
    describe: 'The namespace of the traffic-manager',
  },
} as const;

/**
 * The daemon, started if needed. A daemon of another version (left running across an upgrade)
 * is refused: it would speak an older daemon.proto and load an older client.
 */
export async function startedDaemon(deps: CommandDeps): Promise<DaemonApi> {
  const daemon = await deps.daemon({ start: true });
  if (daemon === undefined) {
    throw new TpError('internal', 'daemon-start-failed', 'the telepresence daemon could not be started');
  }
  const { daemonVersion } = await daemon.version();
  if (daemonVersion !== deps.version) {
    daemon.close();
    throw new TpError('config', 'daemon-version-mismatch', `the running daemon is v${daemonVersion} but this client is v${deps.version}`, {
      hint: 'run: kubectl telepresence quit (then run the command again)',
    });
  }
  return daemon;
}

/** A Connect request for the global flags; paths resolved here, since the daemon runs elsewhere. */
export function connectRequest(deps: CommandDeps, argv: GlobalOptions, managerNamespace: string, outbound?: OutboundRequest) {
  return {
    kube: {
      kubeconfig: argv.kubeconfig !== undefined && argv.kubeconfig !== '' ? resolve(deps.env.cwd, argv.kubeconfig) : '',
      context: argv.context ?? '',
      namespace: argv.namespace ?? '',
      kubeconfigEnv: (deps.env.kubeconfig ?? '')
        .split(delimiter)
        .filter((f) => f !== '')
        .map((f) => resolve(deps.env.cwd, f))
        .join(delimiter),
    },
    managerNamespace,
    product: 'cli',
    outbound,
  };
}

/**
 * A daemon connected to the cluster. An existing connection is kept unless --context,
 * --kubeconfig or --manager-namespace ask for another one (--namespace only chooses where a
 * command works).
 */
export async function connectedDaemon(
  deps: CommandDeps,
  argv: GlobalOptions,
  managerNamespace?: string,
): Promise<{ daemon: DaemonApi; status: ConnectionStatus }> {
  const daemon = await startedDaemon(deps);
  let status = await daemon.status();
  const wantsOther =
    (argv.context !== undefined && argv.context !== status.context) ||
    argv.kubeconfig !== undefined ||
    (managerNamespace !== undefined && managerNamespace !== status.managerNamespace);
  if (status.state !== ConnectionState.CONNECTED || wantsOther) {
    const ns = managerNamespace ?? (status.managerNamespace !== '' ? status.managerNamespace : DEFAULT_MANAGER_NAMESPACE);
    try {
      status = await daemon.connect(connectRequest(deps, argv, ns));
    } catch (err: unknown) {
      // A command that connects on its way (list, intercept, ...) needs the session, not outbound
      // access: when only the latter cannot be had here, it goes on without it and says so.
      if (!(err instanceof TpError) || !OUTBOUND_FAILURE_CODES.has(err.code)) throw err;
      status = await daemon.connect(connectRequest(deps, argv, ns, { disabled: true, alsoProxy: [], neverProxy: [] }));
      deps.io.err(`note: connected without outbound access: ${err.message}\nhint: ${err.hint ?? 'run kubectl telepresence connect'}\n`);
    }
  }
  return { daemon, status };
}
