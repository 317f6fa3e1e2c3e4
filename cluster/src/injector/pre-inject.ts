/**
 * Pre-injection by policy: a pod whose workload has no entry in its namespace's agents ConfigMap
 * still gets the traffic-agent at creation when its pod template, or its Namespace object, carries
 * `telepresence.io/inject-traffic-agent: enabled` (a pod's own `disabled` wins over its
 * namespace's `enabled`). The injector then builds the workload's entry as the traffic-manager
 * would at its first intercept (the same `buildAgentConfig`, fed the same settings), writes it
 * unless the map has one by then, and injects it. The first intercept finds the entry as it would
 * write it, so it writes nothing and restarts nothing.
 *
 * Whatever goes wrong admits the pod unchanged: a workload the builder refuses (no Service selects
 * it, say) is `skipped` with the builder's words; a failed API call is `failed`.
 */
import { serializeAgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { ANNOTATIONS } from '@telepresence-ts/core/contracts';
import { isTpError, toTpError } from '@telepresence-ts/core/errors';
import type { V1Pod } from '@kubernetes/client-node';
import { buildAgentConfig, type BuildOptions } from '../manager/agent-config-builder.js';
import { podSecurityProblem } from '../manager/prepare.js';
import type { InjectorKube, NamespaceMeta } from './admit.js';

const ENABLED = 'enabled';
const DISABLED = 'disabled';

/**
 * Why a pod asks for pre-injection, from the values of `ANNOTATIONS.injectTrafficAgent` on the
 * pod (its template's) and on its namespace; undefined when it does not. Only `enabled` asks; the
 * pod's `disabled` refuses whatever the namespace says; other values count as unset. Pure.
 */
export function preInjectionReason(podValue: string | undefined, namespaceValue: string | undefined): string | undefined {
  if (podValue === ENABLED) return `pod annotation ${ANNOTATIONS.injectTrafficAgent}=${ENABLED}`;
  if (podValue === DISABLED) return undefined;
  if (namespaceValue === ENABLED) return `namespace annotation ${ANNOTATIONS.injectTrafficAgent}=${ENABLED}`;
  return undefined;
}

/** What pre-injection came to for one pod: the entry to inject, or why the pod is admitted unchanged. */
export type PreInjection =
  | {
      readonly outcome: 'entry';
      /** The workload's entry as the ConfigMap now holds it (ours, or one written meanwhile). */
      readonly entry: string;
      /** True when this injector wrote it. */
      readonly written: boolean;
      /** Which annotation asked for it. */
      readonly why: string;
    }
  | { readonly outcome: 'skipped' | 'failed'; readonly reason: string };

/** The entry made for a workload, or the builder's refusal. */
type Made = { readonly entry: string; readonly written: boolean } | { readonly refused: string };

/**
 * Makes the entries of workloads whose pods ask for pre-injection. Pods of one workload admitted
 * together (a ReplicaSet creates its replicas at once) share one build and one write; pods
 * admitted later find the entry in the injector's cache and do not come here.
 */
export class PreInjector {
  readonly #kube: InjectorKube;
  readonly #build: BuildOptions;
  /** Entries being made, by `namespace/workload name` (the ConfigMap's key). */
  readonly #making = new Map<string, Promise<Made>>();

  constructor(kube: InjectorKube, build: BuildOptions) {
    this.#kube = kube;
    this.#build = build;
  }

  /** For a pod of `workload` whose workload has no entry. Never rejects. */
  async entryFor(namespace: string, workload: { readonly kind: WorkloadKind; readonly name: string }, pod: V1Pod): Promise<PreInjection> {
    const podValue = pod.metadata?.annotations?.[ANNOTATIONS.injectTrafficAgent];
    let meta: NamespaceMeta;
    try {
      // Read even when the pod asks by itself: the namespace's Pod Security level decides too.
      meta = await this.#kube.namespaceMeta(namespace);
    } catch (err: unknown) {
      const what = podValue === ENABLED ? 'cannot pre-inject: ' : `cannot tell whether namespace ${namespace} asks for pre-injection: `;
      return { outcome: 'failed', reason: what + toTpError(err).message };
    }
    const why = preInjectionReason(podValue, meta.annotations[ANNOTATIONS.injectTrafficAgent]);
    if (why === undefined) return { outcome: 'skipped', reason: 'no agent configuration' };

    const key = `${namespace}/${workload.name}`;
    let making = this.#making.get(key);
    if (making === undefined) {
      making = this.#make(namespace, workload, meta).finally(() => this.#making.delete(key));
      this.#making.set(key, making);
    }
    try {
      const made = await making;
      if ('refused' in made) return { outcome: 'skipped', reason: `pre-injection (${why}): ${made.refused}` };
      return { outcome: 'entry', entry: made.entry, written: made.written, why };
    } catch (err: unknown) {
      return { outcome: 'failed', reason: `pre-injection (${why}) failed: ${toTpError(err).message}` };
    }
  }

  async #make(namespace: string, workload: { readonly kind: WorkloadKind; readonly name: string }, meta: NamespaceMeta): Promise<Made> {
    const ref = `${workload.kind.toLowerCase()}/${workload.name}`;
    const [object, services] = await Promise.all([this.#kube.readWorkload(namespace, workload.name, workload.kind), this.#kube.listServices(namespace)]);
    if (object === undefined) return { refused: `${ref} is gone from namespace ${namespace}` };
    let entry: string;
    try {
      const config = buildAgentConfig(object, services, this.#build);
      // The manager refuses such a workload at prepare; injected, its pods would be refused by
      // Pod Security admission, which would stop the workload from getting pods at all.
      const refused = podSecurityProblem(config, meta.labels);
      if (refused !== undefined) throw refused;
      entry = serializeAgentConfig(config);
    } catch (err: unknown) {
      // The builder's and the Pod Security check's verdicts on the workload; anything else is a bug.
      if (isTpError(err) && (err.category === 'user' || err.category === 'config')) return { refused: err.message };
      throw err;
    }
    return this.#kube.addAgentConfigEntry(namespace, workload.name, entry);
  }
}
