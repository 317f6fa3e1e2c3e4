/** Kubernetes access for core: the port, the manager-pod lookup, and the client-node adapter. */
import type { KubeApi, KubeFlags } from './kube-api.js';

export * from './kube-api.js';
export * from './manager-pod.js';

/**
 * Builds the real KubeApi. The adapter (and with it @kubernetes/client-node, a large module
 * graph) is loaded on first use, so that commands which never reach the cluster (status,
 * version, quit) and the unit tests do not pay for it. esbuild inlines the dynamic import.
 */
export async function createKubeApi(flags: KubeFlags): Promise<KubeApi> {
  const adapter = await import('./client-node-kube-api.js');
  return adapter.createKubeApi(flags);
}
