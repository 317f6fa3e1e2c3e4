/**
 * The logic of the `telepresence.workloads` view, free of any vscode import: which nodes exist,
 * their labels and when the view must refresh. vscode-tree.ts adapts it to a TreeDataProvider.
 */

/** Whether a workload carries a traffic-agent and whether that agent intercepts. */
export type AgentState = 'none' | 'installed' | 'intercepted';

/** A workload as a WorkloadSource reports it. */
export interface Workload {
  readonly namespace: string;
  readonly name: string;
  /** Deployment, ReplicaSet or StatefulSet. */
  readonly kind: string;
  readonly agent: AgentState;
}

/** Where the view's workloads come from (the connected session, later). */
export interface WorkloadSource {
  listWorkloads(): Promise<readonly Workload[]>;
}

/** A source with nothing in it: what the view shows until a session is connected. */
export const EMPTY_SOURCE: WorkloadSource = {
  listWorkloads: () => Promise.resolve([]),
};

/** One row of the view, in terms the adapter maps 1:1 onto a vscode.TreeItem. */
export interface TreeNode {
  /** Stable across refreshes, so that VS Code keeps selection and expansion. */
  readonly id: string;
  readonly label: string;
  readonly description: string;
  /** Drives `when` clauses of context-menu entries in package.json (`viewItem == ...`). */
  readonly contextValue: string;
  readonly collapsible: boolean;
}

const AGENT_DESCRIPTIONS: Readonly<Record<AgentState, string>> = {
  none: '',
  installed: 'agent installed',
  intercepted: 'intercepted',
};

export function workloadNode(w: Workload): TreeNode {
  return {
    id: `workload/${w.namespace}/${w.kind}/${w.name}`,
    label: w.name,
    description: [w.namespace, AGENT_DESCRIPTIONS[w.agent]].filter((s) => s !== '').join(' · '),
    contextValue: `workload.${w.agent}`,
    collapsible: false,
  };
}

type Listener = () => void;

/** The view's model: a flat list of workloads, sorted by namespace then name. */
export class WorkloadsTree {
  readonly #source: WorkloadSource;
  readonly #listeners = new Set<Listener>();

  constructor(source: WorkloadSource) {
    this.#source = source;
  }

  /** Children of `node`, or the top-level rows when `node` is undefined. Workloads are leaves. */
  async getChildren(node?: TreeNode): Promise<TreeNode[]> {
    if (node !== undefined) {
      return [];
    }
    const workloads = [...(await this.#source.listWorkloads())];
    workloads.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    return workloads.map(workloadNode);
  }

  /** Registers a listener for "the whole tree changed"; returns a function that unregisters it. */
  onDidChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells the view to ask for its children again. */
  refresh(): void {
    for (const listener of this.#listeners) {
      listener();
    }
  }
}
