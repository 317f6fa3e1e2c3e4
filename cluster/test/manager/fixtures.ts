/** Kubernetes objects for the manager's tests. */
import type { V1Container, V1ServicePort } from '@kubernetes/client-node';
import type { KubeService, KubeWorkload } from '../../src/manager/kube.js';
import type { WorkloadKind } from '@telepresence-ts/core/agent-config';

export function workload(name: string, containers: V1Container[], opts: { kind?: WorkloadKind; namespace?: string; labels?: Record<string, string> } = {}): KubeWorkload {
  const namespace = opts.namespace ?? 'default';
  const labels = opts.labels ?? { app: name };
  return {
    kind: opts.kind ?? 'Deployment',
    name,
    namespace,
    object: {
      metadata: { name, namespace },
      spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers } } },
    },
  };
}

export function service(name: string, ports: V1ServicePort[], selector: Record<string, string> | undefined, namespace = 'default'): KubeService {
  return { metadata: { name, namespace, uid: `uid-${name}` }, spec: { selector, ports } };
}
