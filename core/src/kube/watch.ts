/**
 * Live views of Kubernetes objects for front ends that follow the cluster (the VS Code tree): a
 * list, then a watch from its resourceVersion. After a break the watch resumes from the last
 * resourceVersion seen, or lists again when the server's history no longer reaches back that far,
 * so objects deleted meanwhile leave the view; failures are retried on core's Backoff. The adapter
 * (client-node-watch.ts) is loaded on first use, as createKubeApi's is.
 */
import type { TpError } from '../errors.js';
import type { KubeFlags, KubeObject } from './kube-api.js';

/** The kinds a front end can watch; each names the API path its watch uses. */
export type WatchedKind = 'Namespace' | 'Deployment' | 'ReplicaSet' | 'StatefulSet' | 'Service';

/** API group/version and plural of each watched kind. */
export const WATCHED_KINDS: Readonly<Record<WatchedKind, { readonly apiVersion: string; readonly plural: string; readonly namespaced: boolean }>> = {
  Namespace: { apiVersion: 'v1', plural: 'namespaces', namespaced: false },
  Deployment: { apiVersion: 'apps/v1', plural: 'deployments', namespaced: true },
  ReplicaSet: { apiVersion: 'apps/v1', plural: 'replicasets', namespaced: true },
  StatefulSet: { apiVersion: 'apps/v1', plural: 'statefulsets', namespaced: true },
  Service: { apiVersion: 'v1', plural: 'services', namespaced: true },
};

/** The API path a watch of `kind` (in `namespace`, for namespaced kinds) reads. */
export function watchPath(kind: WatchedKind, namespace?: string): string {
  const { apiVersion, plural, namespaced } = WATCHED_KINDS[kind];
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespaced && namespace !== undefined ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

export interface WatchListener<T extends KubeObject> {
  /** Every object currently known, after the first list and after each change. */
  onObjects(objects: readonly T[]): void;
  /** The list or the watch failed; the watcher tries again by itself until it is stopped. */
  onError(err: TpError): void;
}

/** Starts live views; each `watch` returns the function that stops it. */
export interface KubeWatcher {
  watch<T extends KubeObject = KubeObject>(kind: WatchedKind, namespace: string | undefined, listener: WatchListener<T>): () => void;
}

/** Builds a KubeWatcher for the cluster a set of kubectl flags names. */
export async function createKubeWatcher(flags: KubeFlags): Promise<KubeWatcher> {
  const adapter = await import('./client-node-watch.js');
  return adapter.createKubeWatcher(flags);
}
