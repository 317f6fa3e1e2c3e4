/** Finding the traffic-manager pod to port-forward to. */
import { DEFAULT_PORTS, RESOURCE_NAMES } from '../contracts.js';
import { TpError } from '../errors.js';
import { kubectlFor, type KubeApi } from './kube-api.js';
import type { V1Deployment, V1Pod } from './kube-types.js';

/** The hint of every "the manager is missing" error. */
export const INSTALL_HINT = 'run: kubectl telepresence install';

export interface ManagerPod {
  readonly name: string;
  /** The container port named `api`, or the default manager port. */
  readonly port: number;
}

function isReady(pod: V1Pod): boolean {
  return (
    pod.metadata?.deletionTimestamp === undefined &&
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/**
 * A Ready pod of Deployment traffic-manager in the manager namespace. `manager-not-installed`
 * when there is no such Deployment; `manager-not-ready` when it has no Ready pod.
 */
export async function findManagerPod(kube: KubeApi, managerNamespace: string): Promise<ManagerPod> {
  const deployment = await kube.get<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name: RESOURCE_NAMES.manager, namespace: managerNamespace });
  if (deployment === undefined) {
    throw new TpError('user', 'manager-not-installed', `the traffic-manager is not installed in namespace ${managerNamespace} of context ${kube.target.context}`, {
      hint: INSTALL_HINT,
    });
  }
  const matchLabels = deployment.spec?.selector.matchLabels ?? {};
  const labelSelector = Object.entries(matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pods = await kube.list<V1Pod>('v1', 'Pod', { namespace: managerNamespace, labelSelector });
  const pod = pods.find(isReady);
  if (pod === undefined) {
    throw new TpError('cluster', 'manager-not-ready', `the traffic-manager in namespace ${managerNamespace} has no ready pod (${pods.length} pods)`, {
      hint: `check \`${kubectlFor(kube.target)} -n ${managerNamespace} get pods\`, or re-run: kubectl telepresence install`,
    });
  }
  const ports = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const api = ports.find((p) => p.name === RESOURCE_NAMES.managerPortName);
  return { name: pod.metadata?.name ?? '', port: api?.containerPort ?? DEFAULT_PORTS.manager };
}
