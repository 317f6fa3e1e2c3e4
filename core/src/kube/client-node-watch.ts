/**
 * The KubeWatcher adapter over client-node's informer (list, then watch from the list's
 * resourceVersion). client-node's informer stops on an error; this one starts it again after a
 * pause, until the caller stops it.
 */
import { KubernetesObjectApi, makeInformer, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { loadKubeConfig, kubeError } from './client-node-kube-api.js';
import type { KubeFlags, KubeObject } from './kube-api.js';
import { WATCHED_KINDS, watchPath, type KubeWatcher, type WatchedKind, type WatchListener } from './watch.js';

/** Pause before listing again after a failed list or a broken watch: a restarting API server is not hammered. */
const RESTART_DELAY_MS = 2_000;

export function createKubeWatcher(flags: KubeFlags): KubeWatcher {
  const { kc, target } = loadKubeConfig(flags);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  return {
    watch<T extends KubeObject>(kind: WatchedKind, namespace: string | undefined, listener: WatchListener<T>): () => void {
      const { apiVersion, namespaced } = WATCHED_KINDS[kind];
      const ns = namespaced ? namespace : undefined;
      const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
        const result = await objects.list(apiVersion, kind, ns);
        // List items come without apiVersion/kind; consumers tell kinds apart by them.
        return { ...result, items: result.items.map((item) => ({ ...item, apiVersion, kind })) };
      };
      const informer = makeInformer(kc, watchPath(kind, ns), list);
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      const publish = (): void => {
        if (!stopped) listener.onObjects(informer.list(ns) as unknown as T[]);
      };
      for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, publish);
      informer.on('connect', publish);
      const restart = (err: unknown): void => {
        if (stopped) return;
        listener.onError(kubeError(err, target, `watching ${kind}s${ns !== undefined ? ` in namespace ${ns}` : ''}`));
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (!stopped) informer.start().then(publish, restart);
        }, RESTART_DELAY_MS);
      };
      informer.on('error', restart);
      informer.start().then(publish, restart);
      return () => {
        stopped = true;
        clearTimeout(timer);
        void informer.stop();
      };
    },
  };
}
