/** The workload list of a namespace: what `kubectl telepresence list` shows. */
import type { ListResponse, WorkloadInfo } from '@telepresence-ts/proto/daemon/v1';
import type { AgentInfo, InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import { AGENTS_CONFIGMAP } from '../contracts.js';
import type { KubeApi } from '../kube/kube-api.js';
import type { V1ConfigMap, V1Deployment, V1ReplicaSet, V1StatefulSet } from '../kube/kube-types.js';

/**
 * The Deployments, ReplicaSets (those no Deployment manages) and StatefulSets of `namespace`,
 * sorted by name, each with its agent state (installed: an agent of it is in session;
 * configured: the agents ConfigMap has an entry for it) and the intercepts of it among
 * `intercepts` (the manager's latest snapshot, everyone's).
 */
export async function listWorkloads(kube: Pick<KubeApi, 'list' | 'get'>, namespace: string, agents: readonly AgentInfo[], intercepts: readonly InterceptInfo[]): Promise<ListResponse> {
  const ns = namespace;
  const [deployments, replicaSets, statefulSets, configMap] = await Promise.all([
    kube.list<V1Deployment>('apps/v1', 'Deployment', { namespace: ns }),
    kube.list<V1ReplicaSet>('apps/v1', 'ReplicaSet', { namespace: ns }),
    kube.list<V1StatefulSet>('apps/v1', 'StatefulSet', { namespace: ns }),
    kube.get<V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: AGENTS_CONFIGMAP, namespace: ns }),
  ]);
  const configured = new Set(Object.keys(configMap?.data ?? {}));
  const workloads: WorkloadInfo[] = [];
  const add = (kind: string, name: string, ready: number, replicas: number): void => {
    const installed = agents.some((a) => a.namespace === ns && a.name === name);
    workloads.push({
      name,
      namespace: ns,
      kind,
      readyReplicas: ready,
      replicas,
      agentState: installed ? 'installed' : configured.has(name) ? 'configured' : 'none',
      intercepts: intercepts.filter((ii) => ii.spec?.namespace === ns && ii.spec.workloadName === name),
    });
  };
  for (const d of deployments) {
    add('Deployment', d.metadata?.name ?? '', d.status?.readyReplicas ?? 0, d.spec?.replicas ?? 1);
  }
  // A ReplicaSet managed by a Deployment is listed as its Deployment.
  for (const rs of replicaSets.filter((r) => !(r.metadata?.ownerReferences ?? []).some((o) => o.controller === true))) {
    add('ReplicaSet', rs.metadata?.name ?? '', rs.status?.readyReplicas ?? 0, rs.spec?.replicas ?? 1);
  }
  for (const ss of statefulSets) {
    add('StatefulSet', ss.metadata?.name ?? '', ss.status?.readyReplicas ?? 0, ss.spec?.replicas ?? 1);
  }
  workloads.sort((a, b) => a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
  return { workloads };
}
