import { ConnectionState, type ConnectionStatus } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { print } from '../output.js';
import { connectionJson } from './connect.js';
import { defineCommand, type AnyCommand } from './define.js';

export interface StatusReport {
  daemon: { running: boolean; version?: string };
  connection?: ReturnType<typeof connectionJson>;
}

export function statusReport(status: ConnectionStatus | undefined): StatusReport {
  if (status === undefined) {
    return { daemon: { running: false } };
  }
  return { daemon: { running: true, version: status.daemonVersion }, connection: connectionJson(status) };
}

export function formatStatusText(status: ConnectionStatus | undefined): string {
  if (status === undefined) {
    return 'Daemon: not running\n';
  }
  const lines = [`Daemon: running (v${status.daemonVersion})`];
  if (status.state === ConnectionState.CONNECTED) {
    lines.push(`Connection: connected to context ${status.context} (${status.clusterServer}), namespace ${status.namespace}`);
    lines.push(`Traffic manager: v${status.managerVersion} in namespace ${status.managerNamespace}, session ${status.sessionId}`);
  } else {
    lines.push(`Connection: ${status.state === ConnectionState.CONNECTING ? 'connecting' : 'not connected'}`);
  }
  if (status.error !== '') {
    lines.push(`Last error: ${status.error}`);
  }
  return lines.join('\n') + '\n';
}

/** `status`: whether the daemon runs and what it is connected to. Never starts a daemon. */
export function statusCommand(deps: CommandDeps): AnyCommand {
  return defineCommand({
    command: 'status',
    describe: 'Show the daemon and its connection',
    handler: async (argv) => {
      const daemon = await deps.daemon({ start: false });
      let status: ConnectionStatus | undefined;
      if (daemon !== undefined) {
        try {
          status = await daemon.status();
        } finally {
          daemon.close();
        }
      }
      print(deps.io, argv.output, statusReport(status), () => formatStatusText(status));
    },
  });
}
