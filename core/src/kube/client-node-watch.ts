/**
 * The KubeWatcher adapter over client-node's informer (list, then watch from the list's
 * resourceVersion; a watch the server ends resumes from the last resourceVersion, and one whose
 * history is gone, 410, lists again and drops what went meanwhile). client-node's informer stops
 * on an error; this one starts it again after a backoff, until the caller stops it.
 */
import { KubernetesObjectApi, makeInformer, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { loadKubeConfig, kubeError } from './client-node-kube-api.js';
import type { KubeFlags, KubeObject } from './kube-api.js';
import { WATCHED_KINDS, watchPath, type KubeWatcher, type WatchedKind, type WatchListener } from './watch.js';

/**
 * Pause before listing again after a failed list or a broken watch, so that a restarting API
 * server is not hammered: up to 2 s at first, doubling to 30 s; a watch that stayed up for 30 s
 * starts over at 2 s.
 */
const RESTART_BACKOFF: BackoffOptions = { initialMs: 2_000, maxMs: 30_000 };

/** `restartBackoff` spaces the restarts after failures (tests shorten it). */
export function createKubeWatcher(flags: KubeFlags, restartBackoff: BackoffOptions = RESTART_BACKOFF): KubeWatcher {
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
      const backoff = new Backoff(restartBackoff);
      const stopping = new AbortController();
      const { signal } = stopping;
      let errors = 0;
      let restarting = false;
      const publish = (): void => {
        if (!signal.aborted) listener.onObjects(informer.list(ns) as unknown as T[]);
      };
      for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, publish);
      informer.on('connect', publish);
      const run = (): void => {
        const before = errors;
        informer.start().then(() => {
          // A stop that came during the list: the informer opens its watch anyway; close it.
          if (signal.aborted) {
            void informer.stop();
            return;
          }
          if (errors === before) backoff.succeeded();
          publish();
        }, failed);
      };
      const failed = (err: unknown): void => {
        errors++;
        // Stopping aborts the watch request, which the informer reports as an error too.
        if (signal.aborted || restarting) return;
        listener.onError(kubeError(err, target, `watching ${kind}s${ns !== undefined ? ` in namespace ${ns}` : ''}`));
        restarting = true;
        void backoff.wait(signal).then((again) => {
          restarting = false;
          if (again) run();
        });
      };
      informer.on('error', failed);
      run();
      return () => {
        stopping.abort();
        void informer.stop();
      };
    },
  };
}
