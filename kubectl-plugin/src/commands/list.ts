import { InterceptDisposition, LOCAL_HOST, describeReplacePorts, formatBytes, isPersonal, type InterceptInfo, type ListResponse } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon } from '../connection.js';
import { print, table } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

/** An intercept as `list` and `intercept` print it in JSON. */
export function interceptJson(ii: InterceptInfo) {
  return {
    id: ii.id,
    name: ii.spec?.name ?? '',
    namespace: ii.spec?.namespace ?? '',
    workload: ii.spec?.workloadName ?? '',
    // intercept, ingest (no traffic: environment and volumes only), wiretap (a copy) or replace
    // (the container stops in the cluster; all its ports go to `ports`).
    mode: engagementModeOf(ii),
    client: ii.clientName,
    // Empty for a global intercept; a personal one takes only requests with all of these.
    headers: (ii.spec?.headers ?? []).map((h) => ({ name: h.name, value: h.value })),
    // '' and [] for any path and any method; a request must match these as well as the headers.
    httpPathPrefix: ii.spec?.httpPathPrefix ?? '',
    httpMethods: [...(ii.spec?.httpMethods ?? [])],
    localPort: ii.spec?.localPort ?? 0,
    service: ii.target?.serviceName ?? '',
    servicePort: ii.target?.servicePortName !== undefined && ii.target.servicePortName !== '' ? ii.target.servicePortName : String(ii.target?.servicePort ?? ''),
    container: ii.target?.containerName ?? '',
    containerPort: ii.target?.containerPort ?? 0,
    state: dispositionName(ii.disposition),
    ...(ii.message !== '' ? { message: ii.message } : {}),
    // A replace: each container port and the local port its connections go to.
    ...(engagementModeOf(ii) === 'replace' ? { ports: (ii.spec?.ports ?? []).map((p) => ({ containerPort: p.containerPort, localPort: p.localPort })) } : {}),
    // What its agents reported (connections always, requests while watched), when the manager keeps it.
    ...(ii.stats !== undefined ? { stats: { ...ii.stats } } : {}),
  };
}

/**
 * ` (12 connections, 3 requests, 2 dropped: 4.0 KiB)` from the traffic stats, nothing when there
 * are none (or an older manager sent none).
 */
export function statsSuffix(ii: InterceptInfo): string {
  const s = ii.stats;
  if (s === undefined || (s.connections === 0 && s.requests === 0)) return '';
  const parts = [`${s.connections} connection${s.connections === 1 ? '' : 's'}`];
  if (s.requests > 0) parts.push(`${s.requests} request${s.requests === 1 ? '' : 's'}`);
  if (s.droppedConnections > 0) parts.push(`${s.droppedConnections} dropped: ${formatBytes(s.droppedBytes)}`);
  return ` (${parts.join(', ')})`;
}

/** The engagement's mode for people and scripts; `intercept` for one of an older manager that sent none. */
export function engagementModeOf(ii: InterceptInfo): string {
  const mode = ii.spec?.mode ?? '';
  return mode === '' ? 'intercept' : mode;
}

/** `127.0.0.1: 8080, 9090 -> 19090`: where a replace's container ports go (its ports once prepared). */
export function replacePortsText(ii: InterceptInfo): string {
  const ports = ii.spec?.ports ?? [];
  return ports.length === 0 ? `${LOCAL_HOST}, each port to its own number` : `${LOCAL_HOST}: ${describeReplacePorts(ports)}`;
}

/**
 * How `list` and `status` show where an engagement's traffic goes: an ingest takes none, a wiretap
 * a copy, a replace every port of its container.
 */
export function destinationText(ii: InterceptInfo): string {
  const mode = engagementModeOf(ii);
  if (mode === 'ingest') return 'no traffic (ingest)';
  if (mode === 'replace') return `${replacePortsText(ii)} (replace: container ${ii.target?.containerName ?? ii.spec?.containerName ?? ''} not running in the cluster)`;
  if (mode === 'wiretap') return `a copy to ${LOCAL_HOST}:${ii.spec?.localPort ?? 0} (wiretap)`;
  return `${LOCAL_HOST}:${ii.spec?.localPort ?? 0}`;
}

export function dispositionName(d: InterceptDisposition): string {
  switch (d) {
    case InterceptDisposition.WAITING:
      return 'WAITING';
    case InterceptDisposition.ACTIVE:
      return 'ACTIVE';
    case InterceptDisposition.AGENT_ERROR:
      return 'AGENT_ERROR';
    default:
      return 'UNKNOWN';
  }
}

export function listJson(res: ListResponse) {
  return {
    workloads: res.workloads.map((w) => ({
      name: w.name,
      namespace: w.namespace,
      kind: w.kind,
      readyReplicas: w.readyReplicas,
      replicas: w.replicas,
      agent: w.agentState,
      intercepts: w.intercepts.map(interceptJson),
    })),
  };
}

/**
 * ` [x-user=alice /api/* GET,POST]` for a personal intercept (headers, path prefix, methods; all
 * must match), nothing for a global one.
 */
export function headersSuffix(ii: InterceptInfo): string {
  const spec = ii.spec;
  if (spec === undefined || !isPersonal(spec)) return '';
  const parts = spec.headers.map((h) => `${h.name}=${h.value}`);
  if (spec.httpPathPrefix !== '') parts.push(`${spec.httpPathPrefix}*`);
  if (spec.httpMethods.length > 0) parts.push(spec.httpMethods.join(','));
  return ` [${parts.join(' ')}]`;
}

export function formatListText(res: ListResponse): string {
  if (res.workloads.length === 0) {
    return 'No workloads (Deployments, ReplicaSets, StatefulSets) found\n';
  }
  const rows: string[][] = [['NAME', 'KIND', 'READY', 'AGENT', 'INTERCEPTED']];
  for (const w of res.workloads) {
    const intercepted = w.intercepts
      .map((ii) => `${ii.spec?.name ?? ''} by ${ii.clientName}${headersSuffix(ii)} -> ${destinationText(ii)} (${dispositionName(ii.disposition)})${statsSuffix(ii)}`)
      .join(', ');
    rows.push([w.name, w.kind, `${w.readyReplicas}/${w.replicas}`, w.agentState, intercepted === '' ? '-' : intercepted]);
  }
  return table(rows);
}

/** `list`: the workloads of a namespace with their agent and intercepts. */
export function listCommand(deps: CommandDeps): AnyCommand {
  return defineCommand({
    command: 'list',
    describe: 'List workloads, their agents and intercepts',
    handler: async (argv) => {
      const { daemon } = await connectedDaemon(deps, argv);
      try {
        const res = await daemon.list(argv.namespace ?? '');
        print(deps.io, argv.output, listJson(res), () => formatListText(res));
      } finally {
        daemon.close();
      }
    },
  });
}
