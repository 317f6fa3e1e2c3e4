/** An in-memory KubeApi for the manager's tests: it records what it is asked to change. */
import type { AgentsConfigMapEvent, EvictionResult, KubeApi, KubeEvent, KubePod, KubeService, KubeWorkload, PodEvent, StopWatch, WorkloadRefKey } from '../../src/manager/kube.js';
import type { AgentRemovalApi } from '../../src/manager/remove-agents.js';
import type { WorkloadKind } from '@telepresence-ts/core/agent-config';

const key = (ref: { kind: string; namespace: string; name: string }): string => `${ref.namespace}/${ref.kind}/${ref.name}`;

export class FakeKube implements KubeApi, AgentRemovalApi {
  readonly workloads: KubeWorkload[] = [];
  readonly services: KubeService[] = [];
  readonly maps = new Map<string, Record<string, string>>();
  /** Pods by workload key (`ns/Kind/name`). */
  readonly pods = new Map<string, KubePod[]>();
  readonly events: KubeEvent[] = [];
  /** Labels of namespaces (Pod Security levels); none unless a test sets them. */
  readonly namespaceLabelsOf = new Map<string, Record<string, string>>();
  /** Annotations of namespaces; none unless a test sets them. */
  readonly namespaceAnnotationsOf = new Map<string, Record<string, string>>();
  /** Calls that change something, in order: "restart ns/Kind/name", "delete-pod ns/name", "evict ns/name", "apply ns/name", "remove ns/name". */
  readonly calls: string[] = [];
  /**
   * Answers each eviction, after it is recorded as "evict ns/name": by default the pod is evicted
   * (and leaves the lists, its watchers told); tests refuse evictions or make replacements here.
   */
  onEvict: (namespace: string, name: string) => EvictionResult = () => ({ outcome: 'evicted' });
  /** Called on every restartWorkload, after it is recorded (tests simulate the rollout here). */
  onRestart: (ref: WorkloadRefKey, at: string) => void = () => undefined;
  readonly #mapWatchers = new Set<(e: AgentsConfigMapEvent) => void>();
  readonly #podWatchers = new Set<{ namespace: string; onEvent: (e: PodEvent) => void; labels: Readonly<Record<string, string>> | undefined }>();

  setPods(ref: WorkloadRefKey, pods: KubePod[]): void {
    this.pods.set(key(ref), pods);
  }

  async findWorkloads(namespace: string, name: string, kind?: WorkloadKind): Promise<KubeWorkload[]> {
    return this.workloads.filter((w) => w.namespace === namespace && w.name === name && (kind === undefined || w.kind === kind));
  }

  async listServices(namespace: string): Promise<KubeService[]> {
    return this.services.filter((s) => s.metadata?.namespace === namespace);
  }

  async getAgentConfig(namespace: string, name: string): Promise<string | undefined> {
    return this.maps.get(namespace)?.[name];
  }

  async listAgentConfigs(namespace?: string): Promise<Array<{ namespace: string; name: string; value: string }>> {
    return [...this.maps].filter(([ns]) => namespace === undefined || ns === namespace).flatMap(([ns, data]) => Object.entries(data).map(([name, value]) => ({ namespace: ns, name, value })));
  }

  async applyAgentConfig(namespace: string, name: string, value: string): Promise<boolean> {
    const data = this.maps.get(namespace);
    if (data?.[name] === value) return false;
    const type = data === undefined ? 'ADDED' : 'MODIFIED';
    this.maps.set(namespace, { ...data, [name]: value });
    this.calls.push(`apply ${namespace}/${name}`);
    this.#emit({ type, namespace, data: { ...this.maps.get(namespace) } });
    return true;
  }

  async removeAgentConfig(namespace: string, name: string): Promise<boolean> {
    const data = this.maps.get(namespace);
    if (data?.[name] === undefined) return false;
    const { [name]: _gone, ...rest } = data;
    this.maps.set(namespace, rest);
    this.calls.push(`remove ${namespace}/${name}`);
    this.#emit({ type: 'MODIFIED', namespace, data: { ...rest } });
    return true;
  }

  async restartWorkload(ref: WorkloadRefKey, at: string): Promise<void> {
    this.calls.push(`restart ${key(ref)}`);
    this.onRestart(ref, at);
  }

  async listWorkloadPods(ref: WorkloadRefKey): Promise<KubePod[]> {
    return this.pods.get(key(ref)) ?? [];
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    this.calls.push(`delete-pod ${namespace}/${name}`);
  }

  async evictPod(namespace: string, name: string): Promise<EvictionResult> {
    this.calls.push(`evict ${namespace}/${name}`);
    const result = this.onEvict(namespace, name);
    if (result.outcome === 'evicted') {
      for (const [k, list] of this.pods) {
        const gone = list.find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
        if (gone === undefined) continue;
        this.pods.set(k, list.filter((p) => p !== gone));
        this.emitPod('DELETED', gone);
      }
    }
    return result;
  }

  async namespaceLabels(namespace: string): Promise<Readonly<Record<string, string>>> {
    return this.namespaceLabelsOf.get(namespace) ?? {};
  }

  async namespaceAnnotations(namespace: string): Promise<Readonly<Record<string, string>>> {
    return this.namespaceAnnotationsOf.get(namespace) ?? {};
  }

  /** The pods of every workload that have every label of `labels`. */
  async listPodsWithLabels(labels: Readonly<Record<string, string>>): Promise<KubePod[]> {
    return [...this.pods.values()].flat().filter((p) => Object.entries(labels).every(([k, v]) => p.metadata?.labels?.[k] === v));
  }

  async listEvents(namespace: string, involvedName?: string): Promise<KubeEvent[]> {
    return this.events.filter((e) => e.involvedObject.namespace === namespace && (involvedName === undefined || e.involvedObject.name === involvedName));
  }

  watchAgentConfigMaps(onEvent: (e: AgentsConfigMapEvent) => void): StopWatch {
    this.#mapWatchers.add(onEvent);
    for (const [namespace, data] of this.maps) onEvent({ type: 'ADDED', namespace, data: { ...data } });
    return () => this.#mapWatchers.delete(onEvent);
  }

  watchPods(namespace: string, onEvent: (e: PodEvent) => void, labels?: Readonly<Record<string, string>>): StopWatch {
    const watcher = { namespace, onEvent, labels };
    this.#podWatchers.add(watcher);
    return () => this.#podWatchers.delete(watcher);
  }

  /** How many pod watches are open. */
  get podWatches(): number {
    return this.#podWatchers.size;
  }

  /** Tells the pod watches of the pod's namespace whose labels it has about a change to it. */
  emitPod(type: PodEvent['type'], pod: KubePod): void {
    const labels = pod.metadata?.labels ?? {};
    for (const w of this.#podWatchers) {
      if (w.namespace !== pod.metadata?.namespace) continue;
      if (Object.entries(w.labels ?? {}).some(([k, v]) => labels[k] !== v)) continue;
      w.onEvent({ type, pod });
    }
  }

  #emit(e: AgentsConfigMapEvent): void {
    for (const w of this.#mapWatchers) w(e);
  }
}

export interface PodOptions {
  phase?: string;
  ready?: boolean;
  agent?: boolean;
  hash?: string;
  deleting?: boolean;
  created?: Date;
  labels?: Record<string, string>;
  /** Annotations besides the hash's. */
  annotations?: Record<string, string>;
}

/** A pod of a test workload. */
export function pod(name: string, o: PodOptions = {}, namespace = 'default'): KubePod {
  const containers = [{ name: 'app', image: 'app' }, ...(o.agent === true ? [{ name: 'traffic-agent', image: 'agent' }] : [])];
  return {
    metadata: {
      name,
      namespace,
      ...(o.labels === undefined ? {} : { labels: o.labels }),
      annotations: { ...o.annotations, ...(o.hash === undefined ? {} : { 'telepresence.io/agent-config-hash': o.hash }) },
      creationTimestamp: o.created,
      deletionTimestamp: o.deleting === true ? new Date() : undefined,
    },
    spec: { containers },
    status: { phase: o.phase ?? 'Running', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

export function event(involved: { kind: string; name: string; namespace?: string }, reason: string, message: string, type = 'Warning'): KubeEvent {
  return {
    metadata: { name: `${involved.name}.${reason}` },
    involvedObject: { kind: involved.kind, name: involved.name, namespace: involved.namespace ?? 'default' },
    reason,
    message,
    type,
  };
}
