/**
 * The logic of the `telepresence.workloads` view, free of any vscode import: which rows exist,
 * their labels, and the context values that the manifest's menus match. vscode-tree.ts adapts it
 * to a TreeDataProvider. The shape: context > namespaces > workloads > ports and intercepts.
 */
import type { InterceptInfo } from '@telepresence-ts/core';
import { portId, portLabel, type InterceptablePort } from './ports.js';
import type { WorkloadView } from './session.js';

/** What the tree reads from the session. */
export interface TreeSource {
  readonly phase: string;
  readonly connection: { readonly context: string; readonly namespace: string; readonly clusterServer: string; readonly sessionId: string } | undefined;
  readonly namespaces: readonly string[];
  workloads(namespace: string): WorkloadView[];
  onDidChange(listener: () => void): () => void;
}

export type NodeKind = 'context' | 'namespace' | 'workload' | 'port' | 'intercept';

/** One row of the view, in terms the adapter maps 1:1 onto a vscode.TreeItem. */
export interface TreeNode {
  readonly kind: NodeKind;
  /** Stable across refreshes, so that VS Code keeps selection and expansion. */
  readonly id: string;
  readonly label: string;
  readonly description: string;
  readonly tooltip: string;
  /** Drives `when` clauses of context-menu entries in package.json (`viewItem == ...`). */
  readonly contextValue: string;
  readonly collapsible: 'none' | 'collapsed' | 'expanded';
  /** A codicon id. */
  readonly icon: string;
  readonly namespace?: string;
  readonly workload?: WorkloadView;
  readonly port?: InterceptablePort;
  readonly intercept?: InterceptInfo;
}

const AGENT_TEXT: Readonly<Record<string, string>> = {
  none: 'no agent',
  configured: 'agent configured',
  installed: 'agent installed',
  unknown: '',
};

/** A personal intercept's filter, `x-user=alice, x-env=dev, path /api/*, method GET|POST`; '' for a global intercept. */
export function headersText(ii: InterceptInfo): string {
  const parts = (ii.spec?.headers ?? []).map((h) => `${h.name}=${h.value}`);
  if ((ii.spec?.httpPathPrefix ?? '') !== '') parts.push(`path ${ii.spec?.httpPathPrefix ?? ''}*`);
  if ((ii.spec?.httpMethods ?? []).length > 0) parts.push(`method ${(ii.spec?.httpMethods ?? []).join('|')}`);
  return parts.join(', ');
}

export function contextNode(connection: NonNullable<TreeSource['connection']>): TreeNode {
  return {
    kind: 'context',
    id: `context/${connection.context}`,
    label: connection.context,
    description: connection.clusterServer,
    tooltip: `Kubernetes context ${connection.context} (${connection.clusterServer})`,
    contextValue: 'context',
    collapsible: 'expanded',
    icon: 'cloud',
  };
}

export function namespaceNode(namespace: string, connected: boolean): TreeNode {
  return {
    kind: 'namespace',
    id: `namespace/${namespace}`,
    label: namespace,
    description: connected ? 'connected namespace' : '',
    tooltip: `Namespace ${namespace}`,
    contextValue: 'namespace',
    collapsible: connected ? 'expanded' : 'collapsed',
    icon: 'symbol-namespace',
    namespace,
  };
}

export function workloadNode(w: WorkloadView, sessionId: string): TreeNode {
  const mine = w.intercepts.some((ii) => ii.clientSessionId === sessionId);
  const intercepted = w.intercepts.length > 0;
  const parts = [w.kind, `${w.readyReplicas}/${w.replicas} ready`, AGENT_TEXT[w.agentState] ?? w.agentState];
  if (intercepted) parts.push(w.intercepts.length === 1 ? 'intercepted' : `${w.intercepts.length} intercepts`);
  return {
    kind: 'workload',
    id: `workload/${w.namespace}/${w.kind}/${w.name}`,
    label: w.name,
    description: parts.filter((p) => p !== '').join(' · '),
    tooltip: `${w.kind} ${w.namespace}/${w.name}: ${w.ports.length} interceptable port(s)`,
    contextValue: w.ports.length > 0 ? (mine ? 'workload.intercepted' : 'workload.interceptable') : 'workload.unexposed',
    collapsible: 'collapsed',
    icon: intercepted ? 'debug-disconnect' : 'package',
    namespace: w.namespace,
    workload: w,
  };
}

export function portNode(w: WorkloadView, p: InterceptablePort): TreeNode {
  return {
    kind: 'port',
    id: `port/${w.namespace}/${w.kind}/${w.name}/${p.serviceName}/${p.servicePort}`,
    label: portLabel(p),
    description: '',
    tooltip: `Intercept ${w.name} on service port ${p.serviceName}:${portId(p)}`,
    contextValue: 'port',
    collapsible: 'none',
    icon: 'plug',
    namespace: w.namespace,
    workload: w,
    port: p,
  };
}

export function interceptNode(w: WorkloadView, ii: InterceptInfo, sessionId: string): TreeNode {
  const mine = ii.clientSessionId === sessionId;
  if (ii.spec?.mode === 'ingest') {
    // No traffic: the container's environment and volumes only. Left like an intercept.
    const container = ii.target?.containerName ?? ii.spec.containerName;
    return {
      kind: 'intercept',
      id: `intercept/${ii.id}`,
      label: ii.spec.name,
      description: [`ingest of ${container}`, mine ? 'yours' : `by ${ii.clientName}`, 'no traffic'].join(' · '),
      tooltip: `Ingest ${ii.spec.name} owned by ${ii.clientName}: the environment and volumes of container ${container}; the app in the cluster keeps every request`,
      contextValue: mine ? 'intercept.mine' : 'intercept.other',
      collapsible: 'none',
      icon: 'file-symlink-directory',
      namespace: w.namespace,
      workload: w,
      intercept: ii,
    };
  }
  if (ii.spec?.mode === 'replace') {
    // The container does not run in the cluster: every port of it comes to the owner.
    const container = ii.target?.containerName ?? ii.spec.containerName;
    const ports = ii.spec.ports.map((p) => (p.containerPort === p.localPort ? String(p.containerPort) : `${p.containerPort}→${p.localPort}`)).join(', ');
    return {
      kind: 'intercept',
      id: `intercept/${ii.id}`,
      label: ii.spec.name,
      description: [`replace of ${container} → localhost${ports === '' ? '' : `:${ports}`}`, mine ? 'yours' : `by ${ii.clientName}`, 'not running in the cluster'].join(' · '),
      tooltip:
        `Replace ${ii.spec.name} owned by ${ii.clientName}: container ${container} does not run in any replica of ${w.name}; ` +
        `every connection to its ports goes to ${mine ? 'your' : 'their'} workstation${ports === '' ? '' : ` (${ports})`}`,
      contextValue: mine ? 'intercept.mine' : 'intercept.other',
      collapsible: 'none',
      icon: 'arrow-swap',
      namespace: w.namespace,
      workload: w,
      intercept: ii,
    };
  }
  const headers = headersText(ii);
  const target = ii.target !== undefined ? `${ii.target.serviceName}:${ii.target.servicePort}` : w.name;
  if (ii.spec?.mode === 'wiretap') {
    // A copy of the port's traffic: the app (or an intercept) still answers every caller.
    return {
      kind: 'intercept',
      id: `intercept/${ii.id}`,
      label: ii.spec.name,
      description: [`wiretap of ${target} → localhost:${ii.spec.localPort}`, mine ? 'yours' : `by ${ii.clientName}`, 'a copy'].join(' · '),
      tooltip: `Wiretap ${ii.spec.name} owned by ${ii.clientName}: a copy of every connection to ${target}; the callers are answered as before and the copy's answers discarded`,
      contextValue: mine ? 'intercept.mine' : 'intercept.other',
      collapsible: 'none',
      icon: 'eye',
      namespace: w.namespace,
      workload: w,
      intercept: ii,
    };
  }
  return {
    kind: 'intercept',
    id: `intercept/${ii.id}`,
    label: ii.spec?.name ?? ii.id,
    description: [`${target} → localhost:${ii.spec?.localPort ?? 0}`, mine ? 'yours' : `by ${ii.clientName}`, headers !== '' ? headers : 'all traffic'].join(' · '),
    tooltip:
      `Intercept ${ii.spec?.name ?? ''} owned by ${ii.clientName}${headers !== '' ? `, requests with ${headers}` : ', all traffic'}` +
      (ii.target !== undefined && ii.target.sharedWith.length > 0 ? `; also takes ${ii.target.sharedWith.join(', ')} (the same container port)` : ''),
    contextValue: mine ? 'intercept.mine' : 'intercept.other',
    collapsible: 'none',
    icon: 'debug-alt',
    namespace: w.namespace,
    workload: w,
    intercept: ii,
  };
}

/** The view's model. */
export class WorkloadsTree {
  readonly #source: TreeSource;
  /** The parents VS Code has asked children of (by id; '' is the root): the rows it shows. */
  readonly #asked = new Map<string, TreeNode | undefined>();

  constructor(source: TreeSource) {
    this.#source = source;
  }

  /** Children of `node`, or the top-level rows when `node` is undefined. No rows: the welcome view shows. */
  getChildren(node?: TreeNode): TreeNode[] {
    this.#asked.set(node?.id ?? '', node);
    return this.#children(node);
  }

  /**
   * What the shown rows look like now: the children of every parent VS Code asked about. A
   * source change that leaves this alone (a Deployment's status ticking, a snapshot that only
   * repeats the state) needs no refresh, and a refresh would close an open context menu.
   */
  signature(): string {
    return JSON.stringify([...this.#asked].map(([id, node]) => [id, this.#children(node).map(({ workload: _w, port: _p, intercept: _i, ...row }) => row)]));
  }

  #children(node: TreeNode | undefined): TreeNode[] {
    const conn = this.#source.connection;
    if (this.#source.phase !== 'connected' || conn === undefined) return [];
    if (node === undefined) return [contextNode(conn)];
    switch (node.kind) {
      case 'context':
        return this.#source.namespaces.map((ns) => namespaceNode(ns, ns === conn.namespace));
      case 'namespace':
        return this.#source.workloads(node.namespace ?? '').map((w) => workloadNode(w, conn.sessionId));
      case 'workload': {
        // Re-read, so that a refreshed tree shows the workload's current ports and intercepts.
        const w = this.#source.workloads(node.namespace ?? '').find((x) => x.name === node.workload?.name && x.kind === node.workload.kind);
        if (w === undefined) return [];
        return [...w.ports.map((p) => portNode(w, p)), ...w.intercepts.map((ii) => interceptNode(w, ii, conn.sessionId))];
      }
      default:
        return [];
    }
  }

  /** Calls `listener` when a source change alters the shown rows (see `signature`). */
  onDidChange(listener: () => void): () => void {
    let last = this.signature();
    return this.#source.onDidChange(() => {
      const now = this.signature();
      if (now === last) return;
      last = now;
      listener();
    });
  }
}
