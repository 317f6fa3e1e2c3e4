/**
 * The agent-injector's Kubernetes adapter: the only injector file importing
 * @kubernetes/client-node at run time. It keeps every namespace's `telepresence-agents` ConfigMap
 * in a watch-fed cache (a ListWatch with a field selector on the name), so admission reads memory,
 * and reads a ReplicaSet's owner with one GET when a pod needs it. For pre-injection it reads
 * namespaces, workloads and Services, and adds entries to the ConfigMaps with the traffic-manager's
 * read-modify-write (shared/kube-calls.ts).
 *
 * RBAC it needs (cluster-wide): configmaps get+list+watch+create+update, replicasets,
 * deployments and statefulsets get, services list, namespaces get.
 */
import { Backoff, type BackoffOptions } from '@telepresence-ts/core/backoff';
import { AGENTS_CONFIGMAP } from '@telepresence-ts/core/contracts';
import { AppsV1Api, CoreV1Api, KubeConfig, ListWatch, Watch, type V1ConfigMap } from '@kubernetes/client-node';
import { systemClock, type Clock } from '../shared/clock.js';
import { kubeErrorFor, listServices, readWorkload, updateAgentsMap } from '../shared/kube-calls.js';
import type { Logger } from '../shared/log.js';
import type { InjectorKube, OwnerRef } from './admit.js';

// After a failed list or a broken watch, wait before listing again (the API server may be down
// or RBAC missing): up to 1 s at first, doubling to 30 s, so a lasting problem logs a few times a
// minute rather than flooding; a watch that stayed up for 30 s starts over at 1 s.
const RESTART_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/**
 * How long an entry this injector wrote is answered from memory when the watch has not reported
 * any change of its namespace's map since. The watch reports the write within milliseconds, and
 * from then on the cache answers; the bound only matters if the entry went again before our own
 * write's answer came back, so that a removed entry is not injected for longer than this.
 */
const WRITTEN_ENTRY_TTL_MS = 10_000;

/** A refusal names the injector's RBAC. */
const kubeError = kubeErrorFor('agent-injector');

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
export function createKubeAdapter(
  log: Logger,
  kc: KubeConfig = defaultKubeConfig(),
  restartBackoff: BackoffOptions = RESTART_BACKOFF,
  clock: Clock = systemClock,
): KubeAdapter {
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
  // Entries written by addAgentConfigEntry, by `namespace/name`, until the watch reports a change
  // of that namespace's map: the cache then answers (and knows if the entry went since).
  const written = new Map<string, { readonly value: string; readonly at: number }>();
  const changed = (verb: string) => (cm: V1ConfigMap) => {
    const namespace = cm.metadata?.namespace ?? '';
    for (const key of written.keys()) if (key.startsWith(`${namespace}/`)) written.delete(key);
    log.debug(`agent ConfigMap ${verb}`, { namespace, entries: Object.keys(cm.data ?? {}).length });
  };
  informer.on('add', changed('added'));
  informer.on('update', changed('updated'));
  informer.on('delete', changed('deleted'));

  const kube: InjectorKube = {
    agentConfigEntry: (namespace, agentName) => {
      const cached = informer.get(AGENTS_CONFIGMAP, namespace)?.data?.[agentName];
      if (cached !== undefined) return cached;
      const mine = written.get(`${namespace}/${agentName}`);
      return mine !== undefined && clock.now() - mine.at < WRITTEN_ENTRY_TTL_MS ? mine.value : undefined;
    },
    replicaSetOwner: async (namespace, name): Promise<OwnerRef | undefined> => {
      const rs = await apps.readNamespacedReplicaSet({ name, namespace });
      const refs = rs.metadata?.ownerReferences ?? [];
      const owner = refs.find((r) => r.controller === true) ?? refs[0];
      return owner === undefined ? undefined : { kind: owner.kind, name: owner.name };
    },
    namespaceMeta: async (namespace) => {
      try {
        const ns = await core.readNamespace({ name: namespace });
        return { annotations: ns.metadata?.annotations ?? {}, labels: ns.metadata?.labels ?? {} };
      } catch (err: unknown) {
        throw kubeError(err, `read namespace ${namespace}`);
      }
    },
    readWorkload: (namespace, name, kind) => readWorkload(apps, kubeError, namespace, name, kind),
    listServices: (namespace) => listServices(core, kubeError, namespace),
    addAgentConfigEntry: async (namespace, agentName, value) => {
      const { changed: wrote, data } = await updateAgentsMap(core, kubeError, namespace, (entries) => {
        // Someone else's entry (the manager's, another pod's) is never replaced.
        if (agentName in entries) return false;
        entries[agentName] = value;
        return true;
      });
      const entry = data[agentName] ?? value;
      written.set(`${namespace}/${agentName}`, { value: entry, at: clock.now() });
      return { entry, written: wrote };
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
