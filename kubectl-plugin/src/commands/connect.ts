import { ConnectionState, type ConnectionStatus } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectRequest, managerNamespaceOption, startedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface ConnectArgs extends GlobalOptions {
  'manager-namespace': string;
}

/** The JSON form of a connection, shared by connect and status. */
export function connectionJson(s: ConnectionStatus) {
  return {
    connected: s.state === ConnectionState.CONNECTED,
    context: s.context,
    namespace: s.namespace,
    server: s.clusterServer,
    managerNamespace: s.managerNamespace,
    managerVersion: s.managerVersion,
    sessionId: s.sessionId,
    // How intercepted connections reached this workstation: over a direct tunnel to the agent's
    // pod, or relayed by the traffic-manager (when the pod cannot be port-forwarded to).
    interceptedConnections: { direct: s.directConnections, relayed: s.relayedConnections },
    ...(s.error !== '' ? { error: s.error } : {}),
  };
}

export function formatConnected(s: ConnectionStatus): string {
  return `Connected to context ${s.context} (${s.clusterServer}), namespace ${s.namespace}; traffic-manager v${s.managerVersion} in ${s.managerNamespace}\n`;
}

/** `connect`: starts the daemon if needed and connects it to the traffic-manager. */
export function connectCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<ConnectArgs>({
    command: 'connect',
    describe: 'Connect to the cluster (starts the daemon if needed)',
    builder: managerNamespaceOption,
    handler: async (argv) => {
      const daemon = await startedDaemon(deps);
      try {
        const status = await daemon.connect(connectRequest(deps, argv, argv['manager-namespace']));
        print(deps.io, argv.output, connectionJson(status), () => formatConnected(status));
      } finally {
        daemon.close();
      }
    },
  });
}
