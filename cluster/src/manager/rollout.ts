/**
 * The ConfigMap watcher (ADR 0002, prepare step 5): keeps each workload's pods in line with its
 * entry in `telepresence-agents`. The only change it makes to a workload is the pod-template
 * annotation `telepresence.io/restarted-at`, which makes the workload roll out.
 */
import { AGENT_CONTAINER_NAME } from '@telepresence-ts/core/contracts';
import { AGENT_CONFIG_HASH_ANNOTATION, agentConfigHash } from '../shared/agent-config-hash.js';
import { parseAgentConfig, type AgentConfig } from '@telepresence-ts/core/agent-config';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import type { AgentsConfigMapEvent, KubeApi, KubePod, KubeWorkload, StopWatch, WorkloadRefKey } from './kube.js';

/** A pod that is, or is about to be, serving: not being deleted, not finished. */
export function isLivePod(pod: KubePod): boolean {
  const phase = pod.status?.phase;
  return pod.metadata?.deletionTimestamp === undefined && (phase === 'Running' || phase === 'Pending');
}

export function podHasAgent(pod: KubePod): boolean {
  return (pod.spec?.containers ?? []).some((c) => c.name === AGENT_CONTAINER_NAME);
}

export function podConfigHash(pod: KubePod): string | undefined {
  return pod.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION];
}

/** The replicas the workload asks for: `spec.replicas`, which the API server defaults to 1. */
export function desiredReplicas(workload: Pick<KubeWorkload, 'object'>): number {
  return workload.object.spec?.replicas ?? 1;
}

export function refOf(config: AgentConfig): WorkloadRefKey {
  return { kind: config.workloadKind, name: config.workloadName, namespace: config.namespace };
}

/**
 * Rolls a workload out. A bare ReplicaSet does not replace its pods when its template changes, so
 * its live pods are deleted too (it recreates them, through the webhook).
 */
export async function restartWorkload(kube: KubeApi, clock: Clock, ref: WorkloadRefKey): Promise<void> {
  await kube.restartWorkload(ref, new Date(clock.now()).toISOString());
  if (ref.kind === 'ReplicaSet') {
    for (const pod of (await kube.listWorkloadPods(ref)).filter(isLivePod)) {
      await kube.deletePod(ref.namespace, pod.metadata?.name ?? '');
    }
  }
}

export interface RolloutDeps {
  readonly kube: KubeApi;
  readonly clock: Clock;
  readonly log: Logger;
}

/**
 * Watches every `telepresence-agents` ConfigMap and compares each added or changed entry with
 * the workload's pods: when no live pod carries the entry's hash (annotation set by the injector),
 * the workload rolls out. A pod still being created by a rollout is Pending with the new hash, so
 * a repeated event does not restart a rollout in progress. A removed entry rolls out the pods
 * that still carry an agent.
 *
 * Events are handled one at a time, in order; the first event per namespace (also after the
 * watch re-opens) is compared with what was seen before, so a re-opened watch changes nothing.
 */
export class AgentConfigWatcher {
  readonly #deps: RolloutDeps;
  readonly #seen = new Map<string, Readonly<Record<string, string>>>();
  #queue: Promise<void> = Promise.resolve();
  #stop: StopWatch | undefined;

  constructor(deps: RolloutDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#stop = this.#deps.kube.watchAgentConfigMaps((e) => this.enqueue(e));
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  /** Queues one event; `idle()` resolves when every queued event is handled. */
  enqueue(e: AgentsConfigMapEvent): void {
    this.#queue = this.#queue.then(() =>
      this.handle(e).catch((err: unknown) => this.#deps.log.error('agent configuration watcher failed', { namespace: e.namespace, error: (err as Error).message })),
    );
  }

  idle(): Promise<void> {
    return this.#queue;
  }

  async handle(e: AgentsConfigMapEvent): Promise<void> {
    const before = this.#seen.get(e.namespace) ?? {};
    const after = e.data;
    if (e.type === 'DELETED') this.#seen.delete(e.namespace);
    else this.#seen.set(e.namespace, { ...after });
    for (const [name, value] of Object.entries(after)) {
      if (before[name] !== value) await this.#reconcileEntry(e.namespace, name, value);
    }
    for (const [name, value] of Object.entries(before)) {
      if (!(name in after)) await this.#reconcileRemoved(e.namespace, name, value);
    }
  }

  #parse(namespace: string, name: string, value: string): AgentConfig | undefined {
    try {
      return parseAgentConfig(name, value);
    } catch (err: unknown) {
      this.#deps.log.warn('ignoring a bad agent configuration', { namespace, name, error: (err as Error).message });
      return undefined;
    }
  }

  async #reconcileEntry(namespace: string, name: string, value: string): Promise<void> {
    const config = this.#parse(namespace, name, value);
    if (config === undefined) return;
    const ref = refOf(config);
    const hash = agentConfigHash(config);
    const pods = await this.#deps.kube.listWorkloadPods(ref);
    if (pods.some((p) => isLivePod(p) && podConfigHash(p) === hash)) return;
    // No pod to replace and none wanted: the pods of a later scale-up pass the injector anyway,
    // so a restart would only change the template.
    if (!pods.some(isLivePod)) {
      const [workload] = await this.#deps.kube.findWorkloads(ref.namespace, ref.name, ref.kind);
      if (workload !== undefined && desiredReplicas(workload) === 0) {
        this.#deps.log.info('not rolling out a workload with 0 replicas', { namespace, workload: `${ref.kind}/${ref.name}` });
        return;
      }
    }
    this.#deps.log.info('rolling out for a new agent configuration', { namespace, workload: `${ref.kind}/${ref.name}`, hash });
    await restartWorkload(this.#deps.kube, this.#deps.clock, ref);
  }

  async #reconcileRemoved(namespace: string, name: string, oldValue: string): Promise<void> {
    const config = this.#parse(namespace, name, oldValue);
    if (config === undefined) return;
    const ref = refOf(config);
    const pods = await this.#deps.kube.listWorkloadPods(ref);
    if (!pods.some((p) => isLivePod(p) && podHasAgent(p))) return;
    this.#deps.log.info('rolling out to remove the agent', { namespace, workload: `${ref.kind}/${ref.name}` });
    await restartWorkload(this.#deps.kube, this.#deps.clock, ref);
  }
}
