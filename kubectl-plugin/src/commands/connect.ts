import { ConnectionState, type ConnectionStatus } from '@telepresence-ts/core';
import type { OutboundStatus } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectRequest, managerNamespaceOption, startedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface ConnectArgs extends GlobalOptions {
  'manager-namespace': string;
  outbound: boolean;
  'also-proxy': string[];
  'never-proxy': string[];
}

/** The JSON form of outbound access (docs/adr/0006-outbound-access.md). */
export function outboundJson(o: OutboundStatus) {
  return {
    state: o.state,
    device: o.device,
    routed: o.routed,
    neverProxied: o.neverProxied,
    dnsDomains: o.dnsDomains,
    dnsRedirected: o.dnsRedirected,
    tcpFlows: o.tcpFlows,
    udpFlows: o.udpFlows,
    activeFlows: o.activeFlows,
    dnsClusterQueries: o.dnsClusterQueries,
    dnsUpstreamQueries: o.dnsUpstreamQueries,
    ...(o.error !== '' ? { error: o.error } : {}),
  };
}

/** One or two lines on what outbound access routes and resolves. */
export function outboundLines(o: OutboundStatus | undefined): string[] {
  if (o === undefined) return [];
  if (o.state === 'off') return ['Outbound access: off (intercepts only)'];
  if (o.state === 'failed') return [`Outbound access: failed: ${o.error}`];
  const never = o.neverProxied.length > 0 ? `; never ${o.neverProxied.join(', ')}` : '';
  return [
    `Outbound access: ${o.routed.join(', ')} routed into ${o.device}${never}`,
    `Cluster DNS: names in ${o.dnsDomains.join(', ')}${o.dnsRedirected.length > 0 ? ` (queries to ${o.dnsRedirected.join(', ')} answered first by the cluster)` : ''}`,
  ];
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
    ...(s.outbound !== undefined ? { outbound: outboundJson(s.outbound) } : {}),
    ...(s.lostIntercepts.length > 0 ? { lostIntercepts: s.lostIntercepts.map((l) => ({ name: l.name, reason: l.reason })) } : {}),
    ...(s.error !== '' ? { error: s.error } : {}),
  };
}

export function formatConnected(s: ConnectionStatus): string {
  const lines = [`Connected to context ${s.context} (${s.clusterServer}), namespace ${s.namespace}; traffic-manager v${s.managerVersion} in ${s.managerNamespace}`, ...outboundLines(s.outbound)];
  return lines.join('\n') + '\n';
}

const connectOptions = {
  ...managerNamespaceOption,
  outbound: {
    type: 'boolean',
    default: true,
    describe: "Route the cluster's pod and service subnets and its DNS names to this workstation (--outbound=false: intercepts only)",
  },
  'also-proxy': {
    type: 'string',
    array: true,
    default: [] as string[],
    describe: 'Also route this subnet through the cluster (CIDR; repeatable)',
  },
  'never-proxy': {
    type: 'string',
    array: true,
    default: [] as string[],
    describe: "Never route this subnet through the cluster, even inside the cluster's subnets (CIDR; repeatable)",
  },
} as const;

/** `connect`: starts the daemon if needed and connects it to the traffic-manager. */
export function connectCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<ConnectArgs>({
    command: 'connect',
    describe: "Connect to the cluster (starts the daemon if needed): this workstation then reaches the cluster's Services, pods and DNS names",
    builder: (y) =>
      y
        .options(connectOptions)
        .example('$0 connect -n shop', 'curl http://orders:8080 now reaches the Service orders in namespace shop')
        .example('$0 connect --never-proxy 10.96.4.0/24', 'leave 10.96.4.0/24 to this workstation (a VPN that overlaps the cluster)')
        .example('$0 connect --outbound=false', 'intercepts only: no device, routes or DNS changes')
        .epilogue(
          "Outbound access needs root for its network device, routes and DNS redirect, which a separate network daemon owns; without root, connect says what to run. `quit` removes all of it. Subnets that overlap this workstation's own routes are refused: pass --never-proxy for them.",
        ),
    handler: async (argv) => {
      const daemon = await startedDaemon(deps);
      try {
        const outbound = { disabled: !argv.outbound, alsoProxy: argv['also-proxy'], neverProxy: argv['never-proxy'] };
        const status = await daemon.connect(connectRequest(deps, argv, argv['manager-namespace'], outbound));
        print(deps.io, argv.output, connectionJson(status), () => formatConnected(status));
      } finally {
        daemon.close();
      }
    },
  });
}
