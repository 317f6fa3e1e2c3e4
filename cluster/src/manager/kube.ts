/**
 * The traffic-manager's Kubernetes access: the `KubeApi` port and its one adapter. This is the
 * only file of the manager that imports `@kubernetes/client-node` at run time; the rest imports
 * its types from here (`import type`, erased by the bundler).
 */
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type CoreV1Event,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from '@telepresence-ts/core/backoff';
import { AGENTS_CONFIGMAP, ANNOTATIONS } from '@telepresence-ts/core/contracts';
import type { WorkloadKind } from '@telepresence-ts/core/agent-config';
import {
  errorDetail,
  httpCode,
  kubeErrorFor,
  listServices,
  readAgentsMap,
  readWorkload,
  updateAgentsMap,
  type KubeErrorOf,
  type KubeWorkload,
} from '../shared/kube-calls.js';
import type { ClusterNetworkApi } from './cluster-info.js';
import type { AgentRemovalApi } from './remove-agents.js';

export type { CoreV1Event as KubeEvent, V1Pod as KubePod, V1Service as KubeService, KubeWorkload };

export interface WorkloadRefKey {
  readonly kind: WorkloadKind;
  readonly name: string;
  readonly namespace: string;
}

/** A change to a `telepresence-agents` ConfigMap; `data` is empty for a deleted map. */
export interface AgentsConfigMapEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly namespace: string;
  readonly data: Readonly<Record<string, string>>;
}

export interface PodEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly pod: V1Pod;
}

/** What an eviction came to. */
export type EvictionResult = { readonly outcome: 'evicted' | 'gone' } | { readonly outcome: 'blocked'; readonly reason: string };

/** Stops a watch. */
export type StopWatch = () => void;

/**
 * What the manager asks of Kubernetes. Every failure is a TpError (`cluster`, or `config` when
 * RBAC forbids it).
 */
export interface KubeApi {
  /** Deployments, ReplicaSets and StatefulSets named `name` (only of `kind` when given). */
  findWorkloads(namespace: string, name: string, kind?: WorkloadKind): Promise<KubeWorkload[]>;
  listServices(namespace: string): Promise<V1Service[]>;
  /** One entry of the namespace's `telepresence-agents` ConfigMap. */
  getAgentConfig(namespace: string, name: string): Promise<string | undefined>;
  /** Every entry, of one namespace or (namespace undefined) of all. */
  listAgentConfigs(namespace?: string): Promise<Array<{ namespace: string; name: string; value: string }>>;
  /** Writes one entry (creating the ConfigMap when missing); false when it already had this value. */
  applyAgentConfig(namespace: string, name: string, value: string): Promise<boolean>;
  /** Removes one entry; false when there was none. */
  removeAgentConfig(namespace: string, name: string): Promise<boolean>;
  /** Sets the pod-template annotation `telepresence.io/restarted-at` (and nothing else). */
  restartWorkload(ref: WorkloadRefKey, at: string): Promise<void>;
  /** The pods the workload's selector selects. */
  listWorkloadPods(ref: WorkloadRefKey): Promise<V1Pod[]>;
  deletePod(namespace: string, name: string): Promise<void>;
  /**
   * Asks the Eviction API to remove a pod, as `kubectl drain` does: refused (`blocked`, with the
   * API server's reason) while a PodDisruptionBudget allows no disruption; `gone` when the pod no
   * longer exists.
   */
  evictPod(namespace: string, name: string): Promise<EvictionResult>;
  /** Events of the namespace, or of the objects named `involvedName` when given. */
  listEvents(namespace: string, involvedName?: string): Promise<CoreV1Event[]>;
  /** The labels of a namespace; none when it cannot be read (they only sharpen an error message). */
  namespaceLabels(namespace: string): Promise<Readonly<Record<string, string>>>;
  /**
   * Every `telepresence-agents` ConfigMap of every namespace; starts with ADDED for each existing
   * one. After a broken watch, what changed meanwhile is reported as well: a map deleted meanwhile
   * as DELETED, a changed one as MODIFIED, a new one as ADDED (an unchanged one not at all).
   */
  watchAgentConfigMaps(onEvent: (e: AgentsConfigMapEvent) => void): StopWatch;
  /** The pods of a namespace, or only those with every label of `labels` when given; gaps as above. */
  watchPods(namespace: string, onEvent: (e: PodEvent) => void, labels?: Readonly<Record<string, string>>): StopWatch;
}

/**
 * Retries of a watch whose list or connection failed (the API server restarting, RBAC missing): up
 * to 1 s at first, doubling to 30 s, so a lasting problem logs a few times a minute rather than
 * flooding; a watch that stayed up for 30 s starts over at 1 s. A watch the server merely ended
 * (it does, every few minutes) is re-opened at once by the informer, without a failure.
 */
const WATCH_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/** A client-node failure as a TpError; a refusal names the traffic-manager's RBAC. */
export const kubeError: KubeErrorOf = kubeErrorFor('traffic-manager');

function selectorString(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The adapter over a KubeConfig (in-cluster, or from KUBECONFIG for a local run). */
export class ClientNodeKubeApi implements KubeApi, ClusterNetworkApi, AgentRemovalApi {
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #watch: Watch;
  readonly #onWatchError: (path: string, err: unknown) => void;
  readonly #watchBackoff: BackoffOptions;

  /**
   * `onWatchError` hears of every failed list or broken watch (each is retried); `watchBackoff`
   * spaces those retries (tests shorten it).
   */
  constructor(kc: KubeConfig, onWatchError: (path: string, err: unknown) => void = () => undefined, watchBackoff: BackoffOptions = WATCH_BACKOFF) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#watch = new Watch(kc);
    this.#onWatchError = onWatchError;
    this.#watchBackoff = watchBackoff;
  }

  /**
   * KUBECONFIG (or ~/.kube/config) when there is one, for a local run; otherwise, in a pod, the
   * service account.
   */
  static fromEnvironment(onWatchError?: (path: string, err: unknown) => void): ClientNodeKubeApi {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return new ClientNodeKubeApi(kc, onWatchError);
  }

  async findWorkloads(namespace: string, name: string, kind?: WorkloadKind): Promise<KubeWorkload[]> {
    const kinds: WorkloadKind[] = kind === undefined ? ['Deployment', 'ReplicaSet', 'StatefulSet'] : [kind];
    const found = await Promise.all(kinds.map((k) => readWorkload(this.#apps, kubeError, namespace, name, k)));
    return found.filter((w): w is KubeWorkload => w !== undefined);
  }

  listServices(namespace: string): Promise<V1Service[]> {
    return listServices(this.#core, kubeError, namespace);
  }

  async getAgentConfig(namespace: string, name: string): Promise<string | undefined> {
    return (await readAgentsMap(this.#core, kubeError, namespace))?.data?.[name];
  }

  async listAgentConfigs(namespace?: string): Promise<Array<{ namespace: string; name: string; value: string }>> {
    try {
      const fieldSelector = `metadata.name=${AGENTS_CONFIGMAP}`;
      const list = namespace === undefined ? await this.#core.listConfigMapForAllNamespaces({ fieldSelector }) : await this.#core.listNamespacedConfigMap({ namespace, fieldSelector });
      return list.items.flatMap((cm) => Object.entries(cm.data ?? {}).map(([name, value]) => ({ namespace: cm.metadata?.namespace ?? '', name, value })));
    } catch (err: unknown) {
      throw kubeError(err, `list the ${AGENTS_CONFIGMAP} ConfigMaps`);
    }
  }

  /** See `updateAgentsMap`: read-modify-write, retried on conflicts; true when it wrote. */
  async #updateAgentsMap(namespace: string, change: (data: Record<string, string>) => boolean): Promise<boolean> {
    return (await updateAgentsMap(this.#core, kubeError, namespace, change)).changed;
  }

  applyAgentConfig(namespace: string, name: string, value: string): Promise<boolean> {
    return this.#updateAgentsMap(namespace, (data) => {
      if (data[name] === value) return false;
      data[name] = value;
      return true;
    });
  }

  removeAgentConfig(namespace: string, name: string): Promise<boolean> {
    return this.#updateAgentsMap(namespace, (data) => {
      if (!(name in data)) return false;
      delete data[name];
      return true;
    });
  }

  async restartWorkload(ref: WorkloadRefKey, at: string): Promise<void> {
    // A merge patch of this one annotation: the only change the manager ever makes to a workload.
    const body = { spec: { template: { metadata: { annotations: { [ANNOTATIONS.restartedAt]: at } } } } };
    const opts = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const { namespace, name } = ref;
    try {
      switch (ref.kind) {
        case 'Deployment':
          await this.#apps.patchNamespacedDeployment({ namespace, name, body }, opts);
          break;
        case 'StatefulSet':
          await this.#apps.patchNamespacedStatefulSet({ namespace, name, body }, opts);
          break;
        case 'ReplicaSet':
          await this.#apps.patchNamespacedReplicaSet({ namespace, name, body }, opts);
          break;
      }
    } catch (err: unknown) {
      throw kubeError(err, `annotate ${ref.kind.toLowerCase()}/${name} in ${namespace}`);
    }
  }

  async listWorkloadPods(ref: WorkloadRefKey): Promise<V1Pod[]> {
    const [w] = await this.findWorkloads(ref.namespace, ref.name, ref.kind);
    const labels = w?.object.spec?.selector?.matchLabels;
    if (labels === undefined || Object.keys(labels).length === 0) return [];
    try {
      return (await this.#core.listNamespacedPod({ namespace: ref.namespace, labelSelector: selectorString(labels) })).items;
    } catch (err: unknown) {
      throw kubeError(err, `list the pods of ${ref.kind.toLowerCase()}/${ref.name}`);
    }
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedPod({ namespace, name });
    } catch (err: unknown) {
      if (httpCode(err) !== 404) throw kubeError(err, `delete pod ${namespace}/${name}`);
    }
  }

  async evictPod(namespace: string, name: string): Promise<EvictionResult> {
    try {
      await this.#core.createNamespacedPodEviction({ namespace, name, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } } });
      return { outcome: 'evicted' };
    } catch (err: unknown) {
      const code = httpCode(err);
      if (code === 404) return { outcome: 'gone' };
      // 429: a budget allows no disruption now; 500: more than one budget selects the pod, which
      // the API server refuses until someone fixes the budgets.
      if (code === 429 || code === 500) return { outcome: 'blocked', reason: errorDetail(err) };
      throw kubeError(err, `evict pod ${namespace}/${name}`);
    }
  }

  async listEvents(namespace: string, involvedName?: string): Promise<CoreV1Event[]> {
    try {
      const fieldSelector = involvedName === undefined ? undefined : `involvedObject.name=${involvedName}`;
      return (await this.#core.listNamespacedEvent({ namespace, fieldSelector })).items;
    } catch (err: unknown) {
      throw kubeError(err, `list the events of ${namespace}`);
    }
  }

  async namespaceLabels(namespace: string): Promise<Readonly<Record<string, string>>> {
    try {
      return (await this.#core.readNamespace({ name: namespace })).metadata?.labels ?? {};
    } catch {
      return {};
    }
  }

  async namespaceAnnotations(namespace: string): Promise<Readonly<Record<string, string>>> {
    try {
      return (await this.#core.readNamespace({ name: namespace })).metadata?.annotations ?? {};
    } catch (err: unknown) {
      throw kubeError(err, `read namespace ${namespace}`);
    }
  }

  async listPodsWithLabels(labels: Readonly<Record<string, string>>): Promise<V1Pod[]> {
    const labelSelector = selectorString(labels);
    try {
      return (await this.#core.listPodForAllNamespaces({ labelSelector })).items;
    } catch (err: unknown) {
      throw kubeError(err, `list the pods labelled ${labelSelector}`);
    }
  }

  async listNodePodCidrs(): Promise<string[]> {
    try {
      const nodes = (await this.#core.listNode()).items;
      return nodes.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR === undefined ? [] : [n.spec.podCIDR]));
    } catch (err: unknown) {
      throw kubeError(err, 'list the nodes');
    }
  }

  async listPodIps(): Promise<string[]> {
    try {
      // Finished pods have given their addresses back; they are left out on the server.
      const pods = (await this.#core.listPodForAllNamespaces({ fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed' })).items;
      // A hostNetwork pod has its node's address, which is not in any pod subnet.
      return pods.filter((p) => p.spec?.hostNetwork !== true).flatMap((p) => p.status?.podIPs?.map((i) => i.ip) ?? (p.status?.podIP === undefined ? [] : [p.status.podIP]));
    } catch (err: unknown) {
      throw kubeError(err, 'list the pods of every namespace');
    }
  }

  async listServiceCidrs(): Promise<string[] | undefined> {
    // client-node 1.4 has no typed networking.k8s.io/v1 ServiceCIDR client (only the beta's); the
    // generic custom-object list reads any group's resource by its plural.
    try {
      const list = (await this.#custom.listClusterCustomObject({ group: 'networking.k8s.io', version: 'v1', plural: 'servicecidrs' })) as {
        items?: Array<{ spec?: { cidrs?: string[] } }>;
      };
      return (list.items ?? []).flatMap((c) => c.spec?.cidrs ?? []);
    } catch (err: unknown) {
      if (httpCode(err) === 404) return undefined;
      throw kubeError(err, 'list the ServiceCIDRs');
    }
  }

  async refusedClusterIpMessage(namespace: string, clusterIp: string): Promise<string | undefined> {
    const body: V1Service = {
      metadata: { generateName: 'tp-service-range-probe-', namespace },
      spec: { clusterIP: clusterIp, ports: [{ port: 443 }] },
    };
    try {
      // dryRun=All: the API server validates and allocates, then stores nothing.
      await this.#core.createNamespacedService({ namespace, body, dryRun: 'All' });
      return undefined;
    } catch (err: unknown) {
      if (httpCode(err) === 422) return errorDetail(err);
      throw kubeError(err, `probe the Service range in ${namespace}`);
    }
  }

  async kubernetesServiceIp(): Promise<string | undefined> {
    try {
      const ip = (await this.#core.readNamespacedService({ namespace: 'default', name: 'kubernetes' })).spec?.clusterIP;
      return ip === undefined || ip === '' || ip === 'None' ? undefined : ip;
    } catch (err: unknown) {
      if (httpCode(err) === 404) return undefined;
      throw kubeError(err, 'read service/kubernetes in default');
    }
  }

  watchAgentConfigMaps(onEvent: (e: AgentsConfigMapEvent) => void): StopWatch {
    const fieldSelector = `metadata.name=${AGENTS_CONFIGMAP}`;
    return this.#informer<V1ConfigMap>(
      '/api/v1/configmaps',
      () => this.#core.listConfigMapForAllNamespaces({ fieldSelector }),
      { fieldSelector },
      (type, obj) => onEvent({ type, namespace: obj.metadata?.namespace ?? '', data: type === 'DELETED' ? {} : (obj.data ?? {}) }),
    );
  }

  watchPods(namespace: string, onEvent: (e: PodEvent) => void, labels?: Readonly<Record<string, string>>): StopWatch {
    const labelSelector = labels === undefined ? undefined : selectorString(labels);
    return this.#informer<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods`,
      () => this.#core.listNamespacedPod({ namespace, labelSelector }),
      { labelSelector },
      (type, pod) => onEvent({ type, pod }),
    );
  }

  /**
   * client-node's ListWatch: a list, then a watch from the list's resourceVersion. A watch the
   * server ends is resumed from the last resourceVersion seen, so the server replays what changed
   * meanwhile; when it no longer can (410 Expired), the informer lists again and compares the list
   * with its cache, reporting what went as deleted and what changed as updated. Unchanged objects
   * (same resourceVersion) are not reported again.
   *
   * The informer gives up on a failed list or a broken connection (it reports the error and stops);
   * it is started again after a backoff, from its last resourceVersion, until stopped.
   */
  #informer<T extends KubernetesObject>(
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    selectors: { labelSelector?: string | undefined; fieldSelector?: string | undefined },
    handle: (type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T) => void,
  ): StopWatch {
    const informer = new ListWatch<T>(path, this.#watch, list, false, selectors.labelSelector, selectors.fieldSelector);
    const backoff = new Backoff(this.#watchBackoff);
    const stopping = new AbortController();
    const { signal } = stopping;
    let failures = 0;
    let retrying = false;
    const deliver = (type: 'ADDED' | 'MODIFIED' | 'DELETED') => (obj: T) => {
      if (!signal.aborted) handle(type, obj);
    };
    informer.on('add', deliver('ADDED'));
    informer.on('update', deliver('MODIFIED'));
    informer.on('delete', deliver('DELETED'));
    const failed = (err: unknown): void => {
      failures++;
      // Stopping aborts the watch request, which the informer reports as an error too.
      if (signal.aborted || retrying) return;
      this.#onWatchError(path, err);
      retrying = true;
      void backoff.wait(signal).then((waited) => {
        retrying = false;
        if (waited) run();
      });
    };
    const run = (): void => {
      const before = failures;
      informer.start().then(() => {
        // A stop that came during the list: the informer opens its watch anyway; close it.
        if (signal.aborted) void informer.stop();
        else if (failures === before) backoff.succeeded();
      }, failed);
    };
    informer.on('error', failed);
    run();
    return () => {
      stopping.abort();
      void informer.stop();
    };
  }
}
