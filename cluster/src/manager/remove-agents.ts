/**
 * The traffic-manager image's `remove-agents` mode, which the Helm chart runs as its pre-delete
 * hook so that `helm uninstall` leaves no agent behind, as `uninstall --everything` does from the
 * CLI. It removes every entry of every `telepresence-agents` ConfigMap and waits, at most
 * `REMOVE_AGENTS_WAIT_SECONDS`, until no live pod carries the agent label. The evicting is not done
 * here: the traffic-manager, still running while the hook runs, sees each entry go and evicts its
 * workload's pods (rollout.ts), which come back through the injector without the agent.
 *
 * Pods pre-injected by annotation (their own, or their namespace's) are not waited for: the
 * injector gives their replacements the agent again for as long as it runs, which is until the
 * uninstall deletes it, after this.
 */
import { ANNOTATIONS, LABELS, MANAGER_REMOVE_AGENTS_MODE, REMOVE_AGENTS_WAIT_SECONDS } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { preInjectionReason } from '../injector/pre-inject.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import type { KubeApi, KubePod } from './kube.js';
import { isLivePod } from './rollout.js';

/**
 * The image's argv contract: `node manager.js` (or `serve`) serves; `node manager.js remove-agents`
 * removes the agents and exits.
 */
export type ManagerMode = 'serve' | typeof MANAGER_REMOVE_AGENTS_MODE;

/** The mode named by the first program argument; a `config` TpError for anything else. */
export function parseManagerMode(args: readonly string[]): ManagerMode {
  const mode = args[0] ?? 'serve';
  if (mode === 'serve' || mode === MANAGER_REMOVE_AGENTS_MODE) return mode;
  throw new TpError('config', 'bad-arguments', `unknown mode "${mode}"`, {
    hint: `run the traffic-manager image without an argument (it serves) or with \`${MANAGER_REMOVE_AGENTS_MODE}\``,
  });
}

/** The Kubernetes calls of the mode. Failures are TpErrors, as with KubeApi. */
export interface AgentRemovalApi extends Pick<KubeApi, 'listAgentConfigs' | 'removeAgentConfig'> {
  /** The pods of every namespace that carry every label of `labels`. */
  listPodsWithLabels(labels: Readonly<Record<string, string>>): Promise<KubePod[]>;
  /** The annotations of a namespace. */
  namespaceAnnotations(namespace: string): Promise<Readonly<Record<string, string>>>;
}

export interface RemoveAgentsDeps {
  readonly kube: AgentRemovalApi;
  /** Its timers must hold the process (`holdingClock`): nothing else is pending while it waits. */
  readonly clock: Clock;
  readonly log: Logger;
  /** `REMOVE_AGENTS_WAIT_SECONDS` unless a test says otherwise. */
  readonly waitMs?: number;
}

/** How often the pods with an agent are listed while waiting: one label-selected list, cheap. */
export const REMOVE_AGENTS_POLL_MS = 1000;
/** How often the wait says what is left: often enough that a stuck hook shows why in its log. */
export const REMOVE_AGENTS_PROGRESS_MS = 5000;
/** How many pods a progress line names (the rest are counted); the final warning names them all. */
const NAMED_PODS = 10;

export interface RemoveAgentsResult {
  /** `namespace/name` of each entry removed. */
  readonly removed: readonly string[];
  /** `namespace/name` and why, of each entry that could not be removed. */
  readonly failed: ReadonlyArray<{ readonly entry: string; readonly error: string }>;
  /** `namespace/pod` of the pods with an agent not waited for, pre-injected by annotation (last seen). */
  readonly preInjected: readonly string[];
  /** `namespace/pod` of the pods that still had an agent when the wait ended; empty when none did. */
  readonly left: readonly string[];
}

const podKey = (pod: KubePod): string => `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The first `NAMED_PODS` names, and how many more there are. */
function named(pods: readonly string[]): { pods: string[]; more?: number } {
  return pods.length > NAMED_PODS ? { pods: pods.slice(0, NAMED_PODS), more: pods.length - NAMED_PODS } : { pods: [...pods] };
}

/**
 * Removes every agent configuration of the cluster and waits for the pods with an agent to go.
 * Rejects only when the entries cannot be listed (nothing was removed); an entry that cannot be
 * removed, a failed pod list and a wait that runs out are logged and reported in the result, so
 * that a hook which did what it could lets the uninstall go on.
 */
export async function removeAgents(deps: RemoveAgentsDeps): Promise<RemoveAgentsResult> {
  const { kube, clock, log } = deps;
  const waitMs = deps.waitMs ?? REMOVE_AGENTS_WAIT_SECONDS * 1000;
  const waitSeconds = Math.round(waitMs / 1000);

  const removed: string[] = [];
  const failed: Array<{ entry: string; error: string }> = [];
  for (const { namespace, name } of await kube.listAgentConfigs()) {
    const entry = `${namespace}/${name}`;
    try {
      // False: gone meanwhile (an uninstall of that agent from a CLI); nothing to say.
      if (await kube.removeAgentConfig(namespace, name)) {
        removed.push(entry);
        log.info('removed an agent configuration', { entry });
      }
    } catch (err: unknown) {
      failed.push({ entry, error: errorText(err) });
      log.warn('could not remove an agent configuration; its pods keep the agent until they restart', { entry, error: errorText(err) });
    }
  }
  log.info(`removed ${removed.length} agent configurations; waiting up to ${waitSeconds} s while the traffic-manager evicts the pods that have an agent`, {
    removed: removed.length,
    failed: failed.length,
  });

  // A namespace's annotation is read once, when one of its pods needs it; a namespace that cannot
  // be read counts as not annotated, so its pods are waited for (the bound still holds).
  const namespaceValues = new Map<string, Promise<string | undefined>>();
  const namespaceValue = (namespace: string): Promise<string | undefined> => {
    let value = namespaceValues.get(namespace);
    if (value === undefined) {
      value = kube.namespaceAnnotations(namespace).then(
        (annotations) => annotations[ANNOTATIONS.injectTrafficAgent],
        (err: unknown) => {
          log.warn('cannot tell whether a namespace asks for pre-injection; waiting for its pods too', { namespace, error: errorText(err) });
          return undefined;
        },
      );
      namespaceValues.set(namespace, value);
    }
    return value;
  };
  /** Whether the injector gives the pod's replacement the agent again, by its own rule. */
  const preInjected = async (pod: KubePod): Promise<boolean> => {
    const nsValue = await namespaceValue(pod.metadata?.namespace ?? '');
    return preInjectionReason(pod.metadata?.annotations?.[ANNOTATIONS.injectTrafficAgent], nsValue) !== undefined;
  };

  const deadline = clock.now() + waitMs;
  let nextProgress = clock.now();
  /** What the last successful list found; undefined until one succeeded. */
  let seen: { left: string[]; preInjected: string[] } | undefined;
  const toldPreInjected = new Set<string>();
  for (;;) {
    try {
      const pods = (await kube.listPodsWithLabels({ [LABELS.agentInjected]: 'true' })).filter(isLivePod);
      const skip = await Promise.all(pods.map(preInjected));
      seen = { left: pods.filter((_, i) => skip[i] !== true).map(podKey).sort(), preInjected: pods.filter((_, i) => skip[i] === true).map(podKey).sort() };
      const fresh = seen.preInjected.filter((p) => !toldPreInjected.has(p));
      if (fresh.length > 0) {
        for (const p of fresh) toldPreInjected.add(p);
        log.info(
          `not waiting for pods pre-injected by the annotation ${ANNOTATIONS.injectTrafficAgent}=enabled (on the pod or its namespace): ` +
            'the agent-injector gives them the agent again while it runs; they lose it at their first restart after it is gone',
          named(fresh),
        );
      }
      if (seen.left.length === 0) break;
    } catch (err: unknown) {
      log.warn('could not list the pods that have an agent; trying again', { error: errorText(err) });
    }
    const now = clock.now();
    if (now >= deadline) break;
    if (now >= nextProgress) {
      if (seen !== undefined) log.info(`waiting for ${seen.left.length} pods with an agent to go`, { ...named(seen.left), secondsLeft: Math.ceil((deadline - now) / 1000) });
      nextProgress = now + REMOVE_AGENTS_PROGRESS_MS;
    }
    await new Promise<void>((resolve) => clock.setTimer(Math.min(REMOVE_AGENTS_POLL_MS, deadline - now), resolve));
  }

  const result: RemoveAgentsResult = { removed, failed, preInjected: seen?.preInjected ?? [], left: seen?.left ?? [] };
  if (seen === undefined) {
    log.warn(`could not list the pods that have an agent for ${waitSeconds} s; any that have one lose it at their next restart`);
  } else if (seen.left.length > 0) {
    log.warn(`pods still have an agent after ${waitSeconds} s; going on without them: they lose the agent at their next restart`, { pods: seen.left });
  } else if (seen.preInjected.length === 0) {
    log.info('no pod has an agent any more');
  } else {
    log.info('no pod has an agent any more but the pre-injected ones', named(seen.preInjected));
  }
  return result;
}
