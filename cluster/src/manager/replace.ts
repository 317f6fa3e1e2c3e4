/**
 * Keeps each workload's entry in line with the replaces in force (ADR 0010): a container is
 * marked replaced in the entry exactly while a replace holds it (State.replacedContainers). When
 * a replace ends (left, its prepare failed, its owner's session ended) the entry is written again
 * without the marker, and the ConfigMap watcher (rollout.ts) replaces the pods with ones that run
 * the app again. Nothing else of the entry changes, so an intercept beside it keeps its agent.
 */
import { parseAgentConfig, replacedContainers, serializeAgentConfig, withReplaced } from '@telepresence-ts/core/agent-config';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import type { KubeApi } from './kube.js';
import type { State } from './state.js';

/**
 * How long after the traffic-manager starts it waits before it gives every replaced container
 * without a replace its app back: clients that held replaces on the manager before it restarted
 * make them again within a few heartbeats (their recovery backs off up to 5 s), and a container
 * given back and taken again would restart its pods twice for nothing.
 */
export const RESTART_GRACE_MS = 60_000;

export interface ReplaceSyncDeps {
  readonly kube: Pick<KubeApi, 'getAgentConfig' | 'applyAgentConfig' | 'listAgentConfigs'>;
  readonly state: Pick<State, 'replacedContainers'>;
  readonly log: Logger;
}

/** The marked containers, in order; `a,b`. */
const key = (names: readonly string[]): string => [...names].sort().join(',');

/**
 * Writes the entry of `namespace/name` again when the containers marked replaced in it are not
 * those that replaces hold; resolves true when it wrote. An entry that is gone or unreadable is
 * left alone (the prepare that writes it next marks it).
 */
export async function syncReplaced(deps: ReplaceSyncDeps, namespace: string, name: string): Promise<boolean> {
  const text = await deps.kube.getAgentConfig(namespace, name);
  if (text === undefined) return false;
  let config;
  try {
    config = parseAgentConfig(name, text);
  } catch (err: unknown) {
    deps.log.warn('cannot sync the replaced containers of a bad agent configuration', { entry: `${namespace}/${name}`, error: (err as Error).message });
    return false;
  }
  const held = deps.state.replacedContainers(namespace, name);
  const marked = replacedContainers(config);
  if (key(marked) === key(held)) return false;
  const wrote = await deps.kube.applyAgentConfig(namespace, name, serializeAgentConfig(withReplaced(config, held)));
  if (wrote) {
    const back = marked.filter((c) => !held.includes(c));
    deps.log.info('replaced containers changed; the pods are made again', { entry: `${namespace}/${name}`, back, replaced: held });
  }
  return wrote;
}

/**
 * Runs `syncReplaced` for the workloads it is told of, one at a time per workload (a second
 * request while one runs runs once more after it), and logs failures: the next end of a replace
 * or prepare of the workload tries again.
 */
export class ReplaceSync {
  readonly #deps: ReplaceSyncDeps;
  readonly #running = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  /** Until when `afterPrepare` syncs nothing (see `syncAllAfterGrace`). */
  #grace: { clock: Clock; until: number } | undefined;

  constructor(deps: ReplaceSyncDeps) {
    this.#deps = deps;
  }

  /** Syncs the entry of `namespace/name` soon; the promise resolves once it is (never rejects). */
  sync(namespace: string, name: string): Promise<void> {
    const k = `${namespace}/${name}`;
    const running = this.#running.get(k);
    if (running !== undefined) {
      this.#again.add(k);
      return running;
    }
    const run = (async () => {
      do {
        this.#again.delete(k);
        await syncReplaced(this.#deps, namespace, name).catch((err: unknown) =>
          this.#deps.log.error('could not sync the replaced containers', { entry: k, error: err instanceof Error ? err.message : String(err) }),
        );
      } while (this.#again.has(k));
      this.#running.delete(k);
    })();
    this.#running.set(k, run);
    return run;
  }

  /**
   * After a prepare of the workload: it wrote the entry from its view of the replaces, which one
   * that ended meanwhile may have left behind. Nothing during the grace after a restart, when
   * replaces not yet made again are marked but not held (the grace's end syncs every entry).
   */
  afterPrepare(namespace: string, name: string): Promise<void> {
    if (this.#grace !== undefined && this.#grace.clock.now() < this.#grace.until) return Promise.resolve();
    return this.sync(namespace, name);
  }

  /** Syncs every entry that marks a container replaced (after `RESTART_GRACE_MS` from start). */
  async syncAll(): Promise<void> {
    const entries = await this.#deps.kube.listAgentConfigs();
    await Promise.all(entries.filter((e) => /"replaced"\s*:/.test(e.value)).map((e) => this.sync(e.namespace, e.name)));
  }

  /** Calls `syncAll` once, `RESTART_GRACE_MS` from now; returns the cancel function. */
  syncAllAfterGrace(clock: Clock): () => void {
    this.#grace = { clock, until: clock.now() + RESTART_GRACE_MS };
    return clock.setTimer(RESTART_GRACE_MS, () => {
      void this.syncAll().catch((err: unknown) =>
        this.#deps.log.error('could not look for replaced containers left without a replace', { error: err instanceof Error ? err.message : String(err) }),
      );
    });
  }
}
