/**
 * The agent-injector's Kubernetes adapter: the only injector file importing
 * @kubernetes/client-node at run time. It keeps every namespace's `telepresence-agents` ConfigMap
 * in a watch-fed cache (a ListWatch with a field selector on the name), so admission reads memory,
 * and reads a ReplicaSet's owner with one GET when a pod needs it.
 *
 * RBAC it needs (cluster-wide): configmaps list+watch, replicasets get.
 */
import { AGENTS_CONFIGMAP } from '@telepresence-ts/core/contracts';
import { AppsV1Api, CoreV1Api, KubeConfig, ListWatch, Watch, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from '../shared/log.js';
import type { InjectorKube, OwnerRef } from './admit.js';

// After a failed list or a broken watch, wait before listing again (the API server may be down
// or RBAC missing): 1 s, doubling per consecutive failure up to 30 s, so a lasting problem logs
// twice a minute rather than flooding.
const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;

export interface KubeAdapter {
  readonly kube: InjectorKube;
  /** True once the ConfigMaps have been listed (and until the adapter stops). */
  synced(): boolean;
  /** Lists and starts watching; resolves after the first list, or rejects when it failed. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The adapter for the in-cluster configuration (or KUBECONFIG when run on a workstation). */
export function createKubeAdapter(log: Logger, kc: KubeConfig = defaultKubeConfig()): KubeAdapter {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const fieldSelector = `metadata.name=${AGENTS_CONFIGMAP}`;
  const informer = new ListWatch<V1ConfigMap>(
    '/api/v1/configmaps',
    new Watch(kc),
    () => core.listConfigMapForAllNamespaces({ fieldSelector }),
    false,
    undefined,
    fieldSelector,
  );
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastError: unknown;
  let failures = 0;
  informer.on('error', (err: unknown) => {
    lastError = err;
    if (stopped) return;
    const delayMs = Math.min(RESTART_DELAY_MS * 2 ** failures, MAX_RESTART_DELAY_MS);
    failures++;
    log.warn('agent ConfigMap watch failed; restarting', { error: err instanceof Error ? err.message : String(err), delayMs });
    clearTimeout(timer);
    timer = setTimeout(() => {
      informer.start().then(
        () => {
          // A restart that listed (or resumed watching) resets the back-off.
          if (lastError === err) failures = 0;
        },
        (e: unknown) => log.error('cannot restart the ConfigMap watch', { error: String(e) }),
      );
    }, delayMs);
  });
  const changed = (verb: string) => (cm: V1ConfigMap) =>
    log.debug(`agent ConfigMap ${verb}`, { namespace: cm.metadata?.namespace, entries: Object.keys(cm.data ?? {}).length });
  informer.on('add', changed('added'));
  informer.on('update', changed('updated'));
  informer.on('delete', changed('deleted'));

  const kube: InjectorKube = {
    agentConfigEntry: (namespace, agentName) => informer.get(AGENTS_CONFIGMAP, namespace)?.data?.[agentName],
    replicaSetOwner: async (namespace, name): Promise<OwnerRef | undefined> => {
      const rs = await apps.readNamespacedReplicaSet({ name, namespace });
      const refs = rs.metadata?.ownerReferences ?? [];
      const owner = refs.find((r) => r.controller === true) ?? refs[0];
      return owner === undefined ? undefined : { kind: owner.kind, name: owner.name };
    },
  };

  return {
    kube,
    // The informer sets its resource version from the first successful list.
    synced: () => !stopped && informer.latestResourceVersion() !== '',
    start: async () => {
      stopped = false;
      lastError = undefined;
      await informer.start();
      // ListWatch reports a failed list to its error handlers instead of rejecting.
      if (informer.latestResourceVersion() === '') {
        throw lastError instanceof Error ? lastError : new Error(`cannot list ConfigMaps ${AGENTS_CONFIGMAP}: ${String(lastError)}`);
      }
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await informer.stop();
    },
  };
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
