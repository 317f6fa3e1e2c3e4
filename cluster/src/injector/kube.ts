/**
 * The agent-injector's Kubernetes adapter: the only injector file importing
 * @kubernetes/client-node at run time. It keeps every namespace's `telepresence-agents` ConfigMap
 * in a watch-fed cache (a ListWatch with a field selector on the name), so admission reads memory,
 * and reads a ReplicaSet's owner with one GET when a pod needs it.
 *
 * RBAC it needs (cluster-wide): configmaps list+watch, replicasets get.
 */
import { Backoff, type BackoffOptions } from '@telepresence-ts/core/backoff';
import { AGENTS_CONFIGMAP } from '@telepresence-ts/core/contracts';
import { AppsV1Api, CoreV1Api, KubeConfig, ListWatch, Watch, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from '../shared/log.js';
import type { InjectorKube, OwnerRef } from './admit.js';

// After a failed list or a broken watch, wait before listing again (the API server may be down
// or RBAC missing): up to 1 s at first, doubling to 30 s, so a lasting problem logs a few times a
// minute rather than flooding; a watch that stayed up for 30 s starts over at 1 s.
const RESTART_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

export interface KubeAdapter {
  readonly kube: InjectorKube;
  /** True once the ConfigMaps have been listed (and until the adapter stops). */
  synced(): boolean;
  /** Lists and starts watching; resolves after the first list, or rejects when it failed. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The adapter for the in-cluster configuration (or KUBECONFIG when run on a workstation).
 * `restartBackoff` spaces the restarts after failures (tests shorten it).
 */
export function createKubeAdapter(log: Logger, kc: KubeConfig = defaultKubeConfig(), restartBackoff: BackoffOptions = RESTART_BACKOFF): KubeAdapter {
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
  const backoff = new Backoff(restartBackoff);
  // Aborted by stop(): ends a pending restart; a new one per start().
  let stopping = new AbortController();
  let lastError: unknown;
  let errors = 0;
  let restarting = false;
  const restart = (): void => {
    const before = errors;
    informer.start().then(
      () => {
        if (stopping.signal.aborted) void informer.stop();
        // A restart that listed (or resumed watching) counts towards a healthy period.
        else if (errors === before) backoff.succeeded();
      },
      (e: unknown) => log.error('cannot restart the ConfigMap watch', { error: String(e) }),
    );
  };
  informer.on('error', (err: unknown) => {
    lastError = err;
    errors++;
    // Stopping aborts the watch request, which the informer reports as an error too.
    if (stopping.signal.aborted || restarting) return;
    restarting = true;
    const waited = backoff.wait(stopping.signal);
    log.warn('agent ConfigMap watch failed; restarting', { error: err instanceof Error ? err.message : String(err), delayMs: backoff.lastDelayMs });
    void waited.then((again) => {
      restarting = false;
      if (again) restart();
    });
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
    synced: () => !stopping.signal.aborted && informer.latestResourceVersion() !== '',
    start: async () => {
      if (stopping.signal.aborted) stopping = new AbortController();
      lastError = undefined;
      const before = errors;
      await informer.start();
      if (stopping.signal.aborted) {
        // stop() came during the list: the informer opens its watch anyway; close it.
        await informer.stop();
        return;
      }
      if (errors === before) backoff.succeeded();
      // ListWatch reports a failed list to its error handlers instead of rejecting.
      if (informer.latestResourceVersion() === '') {
        throw lastError instanceof Error ? lastError : new Error(`cannot list ConfigMaps ${AGENTS_CONFIGMAP}: ${String(lastError)}`);
      }
    },
    stop: async () => {
      stopping.abort();
      await informer.stop();
    },
  };
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
