import { ConnectionState, isPersonal, type ConnectionStatus, type DaemonApi, type InterceptInfo } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { print } from '../output.js';
import { connectionJson, outboundLines } from './connect.js';
import { defineCommand, type AnyCommand } from './define.js';
import { destinationText, dispositionName, engagementModeOf, headersSuffix, interceptJson, statsSuffix } from './list.js';

export interface StatusReport {
  daemon: { running: boolean; version?: string };
  connection?: ReturnType<typeof connectionJson>;
  /** This daemon's intercepts, while connected. */
  intercepts?: Array<ReturnType<typeof interceptJson>>;
}

export function statusReport(status: ConnectionStatus | undefined, intercepts: readonly InterceptInfo[] = []): StatusReport {
  if (status === undefined) {
    return { daemon: { running: false } };
  }
  return {
    daemon: { running: true, version: status.daemonVersion },
    connection: connectionJson(status),
    ...(status.state === ConnectionState.CONNECTED ? { intercepts: intercepts.map(interceptJson) } : {}),
  };
}

/** One line per intercept: what it takes (all requests, or those with its headers), where to, whose. */
function interceptLines(intercepts: readonly InterceptInfo[]): string[] {
  if (intercepts.length === 0) return ['Intercepts: none'];
  return [
    'Intercepts:',
    ...intercepts.map((ii) => {
      if (engagementModeOf(ii) === 'ingest') {
        return `   ${ii.spec?.name ?? ''}: ${ii.spec?.workloadName ?? ''} environment and volumes, ${destinationText(ii)}, by ${ii.clientName} (${dispositionName(ii.disposition)})`;
      }
      if (engagementModeOf(ii) === 'replace') {
        return `   ${ii.spec?.name ?? ''}: ${ii.spec?.workloadName ?? ''} every port -> ${destinationText(ii)}, by ${ii.clientName} (${dispositionName(ii.disposition)})${statsSuffix(ii)}`;
      }
      const what = isPersonal(ii.spec) ? `requests with${headersSuffix(ii)}` : 'all requests';
      return `   ${ii.spec?.name ?? ''}: ${ii.spec?.workloadName ?? ''} ${what} -> ${destinationText(ii)}, by ${ii.clientName} (${dispositionName(ii.disposition)})${statsSuffix(ii)}`;
    }),
  ];
}

/** The daemon's own intercepts: the first snapshot of WatchState, which the daemon sends at once. */
function ownIntercepts(daemon: DaemonApi): Promise<InterceptInfo[]> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const cancel = daemon.watchState(
      (snapshot) => {
        if (settled) return;
        settled = true;
        resolve(snapshot.intercepts);
        // The first snapshot may arrive before watchState has returned `cancel`.
        queueMicrotask(() => cancel());
      },
      (err) => {
        if (settled) return;
        settled = true;
        if (err === undefined) resolve([]);
        else reject(err);
      },
    );
  });
}

export function formatStatusText(status: ConnectionStatus | undefined, intercepts: readonly InterceptInfo[] = []): string {
  if (status === undefined) {
    return 'Daemon: not running\n';
  }
  const lines = [`Daemon: running (v${status.daemonVersion})`];
  if (status.state === ConnectionState.CONNECTED) {
    lines.push(`Connection: connected to context ${status.context} (${status.clusterServer}), namespace ${status.namespace}`);
    lines.push(`Traffic manager: v${status.managerVersion} in namespace ${status.managerNamespace}, session ${status.sessionId}`);
    lines.push(...outboundLines(status.outbound));
    if (status.outbound?.state === 'up') {
      const o = status.outbound;
      lines.push(`Outbound flows: ${o.tcpFlows} TCP, ${o.udpFlows} UDP (${o.activeFlows} open); DNS: ${o.dnsClusterQueries} answered by the cluster, ${o.dnsUpstreamQueries} passed on`);
    }
    lines.push(...interceptLines(intercepts));
    // Lost when the traffic-manager restarted and could not be made again: the user must know.
    for (const l of status.lostIntercepts) {
      lines.push(`   ${l.name}: LOST after the traffic-manager restarted: ${l.reason}`);
    }
    if (status.directConnections + status.relayedConnections > 0) {
      lines.push(`Intercepted connections: ${status.directConnections} over direct tunnels, ${status.relayedConnections} relayed by the traffic-manager`);
    }
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
      let intercepts: InterceptInfo[] = [];
      if (daemon !== undefined) {
        try {
          status = await daemon.status();
          if (status.state === ConnectionState.CONNECTED) intercepts = await ownIntercepts(daemon);
        } finally {
          daemon.close();
        }
      }
      print(deps.io, argv.output, statusReport(status, intercepts), () => formatStatusText(status, intercepts));
    },
  });
}
