/**
 * The ConfigMap watcher (ADR 0002, prepare step 5; ADR 0009): keeps each workload's pods in line
 * with its entry in `telepresence-agents`. Pods are replaced by eviction, one after another, so
 * the workload object stays exactly as it is in Git and PodDisruptionBudgets are honoured; the
 * webhook gives each new pod the agent (or not) from the entry. Two cases roll the workload out
 * instead, by the pod-template annotation `telepresence.io/restarted-at`: a Deployment with one
 * replica that may surge (a rollout keeps it serving, eviction would not), and pods a budget keeps
 * from being evicted for longer than `evictionWaitMs`. Both are said in the log and to the prepare
 * that waits.
 */
import { AGENT_CONTAINER_NAME, ANNOTATIONS } from '@telepresence-ts/core/contracts';
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

export function isReadyPod(pod: KubePod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
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
 * How many times one replacement evicts again a new pod that came without the agent (the webhook
 * failed open), and how old such a pod must be first.
 */
export const STRAY_EVICTIONS = 3;
export const STRAY_AGE_MS = 5000;

/**
 * How long a PodDisruptionBudget may keep refusing an eviction before the workload is rolled out
 * instead: long enough for a budget that waits on a replacement becoming ready, short against
 * the prepare's own timeout (120 s).
 */
export const EVICTION_WAIT_MS = 30_000;
/** How often a refused eviction is asked again, and the pods looked at between watch events. */
export const EVICTION_RETRY_MS = 1000;
/**
 * How long the replacement of an evicted pod may take to become ready before the next pod is
 * evicted anyway: a rollout would stall there, but the prepare that waits has given up by then.
 */
export const REPLACEMENT_WAIT_MS = 120_000;

/** How a workload's pods are replaced, and why (for the log and the prepare's progress). */
export interface RestartPlan {
  readonly method: 'eviction' | 'rollout';
  readonly why: string;
}

/** Whether a Deployment's rolling update may add a pod before removing one (maxSurge > 0). */
function maySurge(workload: KubeWorkload): boolean {
  if (workload.kind !== 'Deployment') return false;
  const strategy = (workload.object as { spec?: { strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string } } } }).spec?.strategy;
  if (strategy?.type === 'Recreate') return false;
  const surge = strategy?.rollingUpdate?.maxSurge ?? '25%';
  return typeof surge === 'number' ? surge > 0 : Number.parseFloat(surge) > 0;
}

/** How the watcher replaces the workload's pods (pure, for tests). */
export function restartPlan(workload: KubeWorkload): RestartPlan {
  const asked = workload.object.metadata?.annotations?.[ANNOTATIONS.restartBy];
  if (asked === 'rollout') return { method: 'rollout', why: `its annotation ${ANNOTATIONS.restartBy}=rollout asks for it` };
  if (asked === 'eviction') return { method: 'eviction', why: `its annotation ${ANNOTATIONS.restartBy}=eviction asks for it` };
  if (desiredReplicas(workload) === 1 && maySurge(workload)) {
    return {
      method: 'rollout',
      why:
        'it has one replica, which a rollout keeps serving until the new pod is ready while an eviction would leave it without a pod for a moment ' +
        `(annotate the Deployment ${ANNOTATIONS.restartBy}=eviction to evict it anyway)`,
    };
  }
  return { method: 'eviction', why: 'eviction leaves the workload object unchanged and honours PodDisruptionBudgets' };
}

/**
 * Rolls a workload out by its template annotation. A bare ReplicaSet does not replace its pods
 * when its template changes, so its live pods are deleted too (it recreates them, through the webhook).
 */
export async function restartWorkload(kube: KubeApi, clock: Clock, ref: WorkloadRefKey): Promise<void> {
  await kube.restartWorkload(ref, new Date(clock.now()).toISOString());
  if (ref.kind === 'ReplicaSet') {
    for (const pod of (await kube.listWorkloadPods(ref)).filter(isLivePod)) {
      await kube.deletePod(ref.namespace, pod.metadata?.name ?? '');
    }
  }
}

/** A line about a workload's restart, for the prepare that waits on it. */
export type RolloutNotice = (ref: WorkloadRefKey, line: string) => void;

export interface RolloutDeps {
  readonly kube: KubeApi;
  readonly clock: Clock;
  readonly log: Logger;
  /** `EVICTION_WAIT_MS` unless a test says otherwise. */
  readonly evictionWaitMs?: number;
}

/** What the workload's pods should be: with the entry of this hash, or without an agent. */
type Wanted = { readonly hash: string } | { readonly agent: false };

function isStale(pod: KubePod, wanted: Wanted): boolean {
  return 'hash' in wanted ? podConfigHash(pod) !== wanted.hash : podHasAgent(pod);
}

const keyOf = (ref: WorkloadRefKey): string => `${ref.namespace}/${ref.kind}/${ref.name}`;
const nameOf = (ref: WorkloadRefKey): string => `${ref.kind.toLowerCase()}/${ref.name}`;
const podName = (pod: KubePod): string => pod.metadata?.name ?? '';

/**
 * Replaces the pods of one workload that do not match what is wanted. Only pods that were there
 * when it began (or when what is wanted last changed) are evicted: a new pod that does not match
 * either was made without the webhook's help, and evicting it would only make another.
 */
class PodReplacement {
  #wanted: Wanted;
  #candidates: Set<string> | undefined;
  #wake: (() => void) | undefined;
  #stopped = false;
  #finished = false;
  readonly done: Promise<void>;

  constructor(
    readonly ref: WorkloadRefKey,
    wanted: Wanted,
    private readonly deps: RolloutDeps,
    private readonly notice: (line: string) => void,
  ) {
    this.#wanted = wanted;
    this.done = this.#run().catch((err: unknown) =>
      deps.log.error('replacing pods failed', { workload: `${ref.namespace}/${nameOf(ref)}`, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  /** True once it has stopped looking at the pods: a change after that needs a new replacement. */
  get finished(): boolean {
    return this.#finished;
  }

  /** What is wanted changed while this runs: look at the pods afresh. */
  retarget(wanted: Wanted): void {
    this.#wanted = wanted;
    this.#candidates = undefined;
    this.#wake?.();
  }

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Waits for a change to the workload's pods, or `EVICTION_RETRY_MS`. */
  #changed(): Promise<void> {
    return new Promise((resolve) => {
      const cancel = this.deps.clock.setTimer(EVICTION_RETRY_MS, () => this.#wake?.());
      this.#wake = () => {
        this.#wake = undefined;
        cancel();
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    const { kube, clock, log } = this.deps;
    const ref = this.ref;
    const workloadName = `${ref.namespace}/${nameOf(ref)}`;
    let stopWatch: StopWatch = () => undefined;
    let blockedSince: number | undefined;
    let waitingSince: number | undefined;
    let evicted = 0;
    let strayEvictions = 0;
    try {
      for (;;) {
        if (this.#stopped) return;
        const [workload] = await kube.findWorkloads(ref.namespace, ref.name, ref.kind);
        if (workload === undefined) return;
        const wanted = this.#wanted;
        const pods = (await kube.listWorkloadPods(ref)).filter(isLivePod);
        // What is wanted changed while the pods were listed: look again, for the new target.
        if (this.#wanted !== wanted) continue;
        if (this.#candidates === undefined) {
          this.#candidates = new Set(pods.map(podName));
          evicted = 0;
          blockedSince = undefined;
          waitingSince = undefined;
          const labels = workload.object.spec?.selector?.matchLabels;
          stopWatch();
          stopWatch = labels === undefined || Object.keys(labels).length === 0 ? () => undefined : kube.watchPods(ref.namespace, () => this.#wake?.(), labels);
        }
        const stale = pods.filter((p) => isStale(p, wanted));
        const strays = 'hash' in wanted ? stale.filter((p) => this.#candidates?.has(podName(p)) !== true) : [];
        // A new pod without the agent: the webhook failed open (the injector restarting, as in an
        // upgrade). Evicted again once it is STRAY_AGE_MS old, so the injector has had the time
        // to come back, at most STRAY_EVICTIONS times: a lasting failure must not churn the pods.
        const retries = strayEvictions < STRAY_EVICTIONS ? strays.filter((p) => clock.now() - (p.metadata?.creationTimestamp?.getTime() ?? clock.now()) >= STRAY_AGE_MS) : [];
        const candidates = [...stale.filter((p) => this.#candidates?.has(podName(p)) === true), ...retries];
        if (candidates.length === 0) {
          if (strays.length > 0 && strayEvictions < STRAY_EVICTIONS) {
            await this.#changed();
            continue;
          }
          if (strays.length > 0) log.warn('new pods came without the agent; not evicting them again', { workload: workloadName, pods: strays.map(podName) });
          return;
        }

        const plan = restartPlan(workload);
        if (plan.method === 'rollout') {
          // A rollout under way already has pods as wanted: a second one would start it over.
          if (pods.some((p) => !isStale(p, wanted))) return;
          log.info('rolling out', { workload: workloadName, why: plan.why });
          this.notice(`restarting ${nameOf(ref)} by a rollout, which changes its pod template: ${plan.why}`);
          await restartWorkload(kube, clock, ref);
          if (this.#wanted !== wanted) continue;
          return;
        }

        // Pods that are not ready serve nothing: they go first, at once. A ready one goes only
        // while every pod is ready and none is missing, so one pod at most is down at a time.
        const settled = pods.every(isReadyPod) && pods.length >= desiredReplicas(workload);
        const victim = candidates.find((p) => !isReadyPod(p)) ?? (settled ? candidates[0] : undefined);
        if (victim === undefined) {
          waitingSince ??= clock.now();
          if (clock.now() - waitingSince >= REPLACEMENT_WAIT_MS) {
            log.warn('the pods did not become ready; evicting no more', { workload: workloadName, left: candidates.map(podName) });
            return;
          }
          await this.#changed();
          continue;
        }
        waitingSince = undefined;
        const result = await kube.evictPod(ref.namespace, podName(victim));
        if (result.outcome === 'blocked') {
          const waitMs = this.deps.evictionWaitMs ?? EVICTION_WAIT_MS;
          if (blockedSince === undefined) {
            blockedSince = clock.now();
            this.notice(`evicting pod ${podName(victim)} is refused (${result.reason}); asking again for up to ${Math.round(waitMs / 1000)} s`);
          } else if (clock.now() - blockedSince >= waitMs) {
            log.warn('eviction refused; rolling out instead', { workload: workloadName, pod: podName(victim), reason: result.reason });
            this.notice(
              `a PodDisruptionBudget kept pod ${podName(victim)} from being evicted for ${Math.round(waitMs / 1000)} s (${result.reason}); ` +
                `restarting ${nameOf(ref)} by a rollout instead, which sets the annotation ${ANNOTATIONS.restartedAt} on its pod template`,
            );
            await restartWorkload(kube, clock, ref);
            if (this.#wanted !== wanted) continue;
            return;
          }
          await this.#changed();
          continue;
        }
        blockedSince = undefined;
        if (retries.includes(victim)) {
          strayEvictions++;
          log.warn('a new pod came without the agent; evicting it again', { workload: workloadName, pod: podName(victim), attempt: strayEvictions });
        }
        this.#candidates?.delete(podName(victim));
        if (result.outcome === 'evicted') {
          evicted++;
          log.info('evicted a pod', { workload: workloadName, pod: podName(victim) });
          this.notice(`evicted pod ${podName(victim)} of ${nameOf(ref)} (${evicted} of ${evicted + candidates.length - 1})`);
        }
      }
    } finally {
      // At once, as the run returns: a change from now on starts a new replacement.
      this.#finished = true;
      stopWatch();
    }
  }
}

/**
 * Watches every `telepresence-agents` ConfigMap and brings each workload's pods in line with its
 * added, changed or removed entry: pods without the entry's hash (set by the injector), or with
 * an agent when the entry is gone, are replaced. Every workload is handled on its own, so one
 * that waits on a budget does not hold up the others; a new change to a workload being handled
 * redirects the replacement under way.
 *
 * ConfigMap events are read one at a time, in order; the first event per namespace (also after
 * the watch re-opens) is compared with what was seen before, so a re-opened watch changes nothing.
 */
export class AgentConfigWatcher {
  readonly #deps: RolloutDeps;
  readonly #seen = new Map<string, Readonly<Record<string, string>>>();
  readonly #replacements = new Map<string, PodReplacement>();
  readonly #listeners = new Set<RolloutNotice>();
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
    for (const r of this.#replacements.values()) r.stop();
  }

  /** Hears each line about a restart (eviction, a rollout and why); returns the unsubscribe. */
  onNotice(listener: RolloutNotice): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Queues one event; `idle()` resolves when every queued event and pod replacement is done. */
  enqueue(e: AgentsConfigMapEvent): void {
    this.#queue = this.#queue.then(() =>
      this.handle(e).catch((err: unknown) => this.#deps.log.error('agent configuration watcher failed', { namespace: e.namespace, error: (err as Error).message })),
    );
  }

  async idle(): Promise<void> {
    await this.#queue;
    while (this.#replacements.size > 0) await Promise.all([...this.#replacements.values()].map((r) => r.done));
  }

  async handle(e: AgentsConfigMapEvent): Promise<void> {
    const before = this.#seen.get(e.namespace) ?? {};
    const after = e.data;
    if (e.type === 'DELETED') this.#seen.delete(e.namespace);
    else this.#seen.set(e.namespace, { ...after });
    for (const [name, value] of Object.entries(after)) {
      if (before[name] === value) continue;
      const config = this.#parse(e.namespace, name, value);
      if (config !== undefined) this.#replace(refOf(config), { hash: agentConfigHash(config) });
    }
    for (const [name, value] of Object.entries(before)) {
      if (name in after) continue;
      const config = this.#parse(e.namespace, name, value);
      if (config !== undefined) this.#replace(refOf(config), { agent: false });
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

  #replace(ref: WorkloadRefKey, wanted: Wanted): void {
    const key = keyOf(ref);
    const running = this.#replacements.get(key);
    if (running !== undefined && !running.finished) {
      running.retarget(wanted);
      return;
    }
    const replacement = new PodReplacement(ref, wanted, this.#deps, (line) => {
      for (const l of this.#listeners) l(ref, line);
    });
    this.#replacements.set(key, replacement);
    void replacement.done.then(() => {
      if (this.#replacements.get(key) === replacement) this.#replacements.delete(key);
    });
  }
}
