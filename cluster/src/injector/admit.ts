/**
 * The webhook's decision for one AdmissionRequest (ADR 0002, prepare step 6): find the pod's
 * workload, read its agent configuration (or make it, when the pod asks for pre-injection:
 * pre-inject.ts), and answer the patch `injectAgent` implies. Kubernetes is reached only through
 * the `InjectorKube` port; the HTTP envelope is webhook.ts's.
 */
import { ANNOTATIONS } from '@telepresence-ts/core/contracts';
import { toTpError } from '@telepresence-ts/core/errors';
import type { V1OwnerReference, V1Pod, V1Service } from '@kubernetes/client-node';
import { agentConfigHash } from '../shared/agent-config-hash.js';
import type { KubeWorkload } from '../shared/kube-calls.js';
import { AgentConfigError, parseAgentConfig, type AgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { injectAgent } from './inject.js';
import { diffToJsonPatch, type JsonPatchOp } from './patch.js';
import type { PreInjector } from './pre-inject.js';

/** A controlling owner, as read from an owner reference. */
export interface OwnerRef {
  readonly kind: string;
  readonly name: string;
}

/** What pre-injection reads of a Namespace object. */
export interface NamespaceMeta {
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * What the injector needs from Kubernetes (kube.ts implements it; tests fake it). Failures are
 * TpErrors.
 */
export interface InjectorKube {
  /** The controlling owner of a ReplicaSet (a Deployment, usually); undefined when it has none. */
  replicaSetOwner(namespace: string, name: string): Promise<OwnerRef | undefined>;
  /**
   * The workload's entry of the namespace's agents ConfigMap (from a watch-fed cache, so
   * admission does not wait on the API server, plus the entries this injector wrote that the
   * watch has not reported yet); undefined when there is none.
   */
  agentConfigEntry(namespace: string, agentName: string): string | undefined;
  /** For pre-injection: the annotations and labels of a namespace. */
  namespaceMeta(namespace: string): Promise<NamespaceMeta>;
  /** For pre-injection: the workload object; undefined when there is none. */
  readWorkload(namespace: string, name: string, kind: WorkloadKind): Promise<KubeWorkload | undefined>;
  /** For pre-injection: every Service of the namespace. */
  listServices(namespace: string): Promise<V1Service[]>;
  /**
   * For pre-injection: writes `value` as the workload's entry unless the map has one by then
   * (creating the map when there is none), and from then on `agentConfigEntry` answers it.
   * Resolves to the entry the map holds afterwards (`value`, or one written meanwhile) and
   * whether this call wrote it.
   */
  addAgentConfigEntry(namespace: string, agentName: string, value: string): Promise<{ entry: string; written: boolean }>;
}

/** The parts of an admission.k8s.io/v1 AdmissionRequest the injector reads. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind?: { readonly group?: string; readonly version?: string; readonly kind?: string };
  readonly namespace?: string;
  readonly name?: string;
  readonly operation?: string;
  readonly object?: unknown;
  readonly dryRun?: boolean;
}

/** The decision: a patch (possibly empty: admit unchanged) and why, for the log. */
export interface Decision {
  readonly patch: JsonPatchOp[];
  /** `injected`, or why not: `skipped: ...`, `failed: ...`. */
  readonly outcome: 'injected' | 'skipped' | 'failed';
  readonly reason: string;
  readonly workload?: string;
  readonly hash?: string;
}

export interface AdmitDeps {
  readonly kube: InjectorKube;
  /** The manager's namespace, never injected (nor is kube-system). */
  readonly managerNamespace: string;
  /**
   * Makes the entry of a pod's workload when it has none and the pod or its namespace asks for
   * pre-injection. Undefined: a pod whose workload has no entry is admitted unchanged.
   */
  readonly preInjector?: PreInjector;
}

/** Namespaces whose pods never get an agent, besides the manager's. */
const SYSTEM_NAMESPACES = ['kube-system'];

const skip = (reason: string, workload?: string): Decision => ({
  patch: [],
  outcome: 'skipped',
  reason,
  ...(workload === undefined ? {} : { workload }),
});

/** Finds the workload that owns the pod: its ReplicaSet's Deployment, its StatefulSet, or its bare ReplicaSet. */
export async function findWorkload(
  kube: InjectorKube,
  namespace: string,
  pod: V1Pod,
): Promise<{ kind: WorkloadKind; name: string } | undefined> {
  const refs: V1OwnerReference[] = pod.metadata?.ownerReferences ?? [];
  const owner = refs.find((r) => r.controller === true) ?? refs[0];
  if (owner === undefined) return undefined;
  if (owner.kind === 'StatefulSet') return { kind: 'StatefulSet', name: owner.name };
  if (owner.kind !== 'ReplicaSet') return undefined;
  const rsOwner = await kube.replicaSetOwner(namespace, owner.name);
  if (rsOwner?.kind === 'Deployment') return { kind: 'Deployment', name: rsOwner.name };
  // A ReplicaSet owned by something else (an Argo Rollout, say) is not a workload we manage.
  return rsOwner === undefined ? { kind: 'ReplicaSet', name: owner.name } : undefined;
}

/** Decides one request. Never throws: a failure is a decision to admit the pod unchanged. */
export async function admit(request: AdmissionRequest, deps: AdmitDeps): Promise<Decision> {
  try {
    return await decide(request, deps);
  } catch (err: unknown) {
    return { patch: [], outcome: 'failed', reason: toTpError(err).message };
  }
}

async function decide(request: AdmissionRequest, deps: AdmitDeps): Promise<Decision> {
  if (request.operation !== 'CREATE' || request.kind?.kind !== 'Pod') {
    return skip(`not a pod creation (${String(request.operation)} ${String(request.kind?.kind)})`);
  }
  const pod = request.object as V1Pod | undefined;
  if (typeof pod !== 'object' || pod === null || pod.spec === undefined) return skip('the request carries no pod');
  const namespace = request.namespace ?? pod.metadata?.namespace ?? '';
  if (namespace === '' || SYSTEM_NAMESPACES.includes(namespace) || namespace === deps.managerNamespace) {
    return skip(`namespace ${namespace || '(none)'} is never injected`);
  }
  // The agent's ports and the init container's iptables rules would land in the node's network.
  if (pod.spec.hostNetwork === true) return skip('the pod uses the host network');
  if (pod.metadata?.annotations?.[ANNOTATIONS.injectTrafficAgent] === 'disabled') {
    return skip(`annotation ${ANNOTATIONS.injectTrafficAgent}=disabled`);
  }
  const workload = await findWorkload(deps.kube, namespace, pod);
  if (workload === undefined) return skip('not owned by a Deployment, ReplicaSet or StatefulSet');
  const label = `${workload.kind}/${workload.name}`;
  let entry = deps.kube.agentConfigEntry(namespace, workload.name);
  let made = '';
  if (entry === undefined) {
    if (deps.preInjector === undefined) return skip('no agent configuration', label);
    const pre = await deps.preInjector.entryFor(namespace, workload, pod);
    if (pre.outcome !== 'entry') return { patch: [], outcome: pre.outcome, reason: pre.reason, workload: label };
    entry = pre.entry;
    if (pre.written) made = `; pre-injection (${pre.why}) wrote its configuration`;
  }
  let config: AgentConfig;
  try {
    config = parseAgentConfig(workload.name, entry);
  } catch (err: unknown) {
    if (err instanceof AgentConfigError) return { patch: [], outcome: 'failed', reason: err.message, workload: label };
    throw err;
  }
  if (config.workloadKind !== workload.kind || config.namespace !== namespace) {
    return skip(`the configuration is for ${config.workloadKind} ${config.namespace}/${config.workloadName}`, label);
  }
  const hash = agentConfigHash(config);
  const patch = diffToJsonPatch(pod, injectAgent(pod, config, { hash }));
  if (patch.length === 0) return skip('already carries this agent', label);
  return { patch, outcome: 'injected', reason: `agent added${made}`, workload: label, hash };
}
