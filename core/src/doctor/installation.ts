/**
 * The traffic-manager and the agent-injector in the manager namespace: present, ready, and of the
 * CLI's major.minor version (connect refuses another; an injector of another version would give
 * pods agents the manager does not speak to).
 */
import { DEFAULT_MANAGER_NAMESPACE, type RESOURCE_NAMES } from '../contracts.js';
import { majorMinor } from '../daemon/daemon.js';
import { kubectlFor, type KubeApi } from '../kube/kube-api.js';
import type { V1Deployment, V1Pod } from '../kube/kube-types.js';
import { fail, ok, warn, type Finding } from './finding.js';

/** What the installation checks read. */
export type InstallationKube = Pick<KubeApi, 'target' | 'get' | 'list'>;

export type ProgramName = typeof RESOURCE_NAMES.manager | typeof RESOURCE_NAMES.injector;

/** `kubectl telepresence install`, with the manager namespace when it is not the default. */
export function installCommand(managerNamespace: string): string {
  return `kubectl telepresence install${managerNamespace === DEFAULT_MANAGER_NAMESPACE ? '' : ` --manager-namespace ${managerNamespace}`}`;
}

/** The tag of an image reference (`repo/name:1.2.3` -> `1.2.3`); undefined without one or with a digest only. */
export function imageTag(image: string): string | undefined {
  const name = image.split('@')[0] ?? '';
  const colon = name.lastIndexOf(':');
  // A colon before the last slash belongs to a registry's port (`host:5000/name`).
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : undefined;
}

function isReady(pod: V1Pod): boolean {
  return pod.metadata?.deletionTimestamp === undefined && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Why a pod is not ready, from its containers' states (ImagePullBackOff, CrashLoopBackOff, ...). */
function notReadyReason(pods: readonly V1Pod[]): string | undefined {
  for (const pod of pods) {
    for (const s of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const reason = s.state?.waiting?.reason ?? s.state?.terminated?.reason;
      if (reason !== undefined && reason !== '' && reason !== 'Completed') return `${pod.metadata?.name ?? ''}: ${reason}`;
    }
    const unschedulable = (pod.status?.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (unschedulable !== undefined) return `${pod.metadata?.name ?? ''}: ${unschedulable.reason ?? 'not scheduled'}`;
  }
  return undefined;
}

/** The Deployment of one of the two programs, as a finding named after it. */
export async function checkProgram(kube: InstallationKube, managerNamespace: string, name: ProgramName, clientVersion: string): Promise<Finding> {
  const kubectl = `${kubectlFor(kube.target)} -n ${managerNamespace}`;
  const deployment = await kube.get<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: managerNamespace });
  if (deployment === undefined) {
    return fail(name, 'cluster', `not installed in namespace ${managerNamespace} of context ${kube.target.context}`, installCommand(managerNamespace));
  }
  const replicas = deployment.spec?.replicas ?? 1;
  const ready = deployment.status?.readyReplicas ?? 0;
  if (replicas === 0) {
    return fail(name, 'cluster', `deployment/${name} is scaled to 0 replicas`, `${kubectl} scale deployment/${name} --replicas=1`);
  }
  const container = (deployment.spec?.template.spec?.containers ?? []).find((c) => c.name === name) ?? deployment.spec?.template.spec?.containers[0];
  const image = container?.image ?? '';
  const version = imageTag(image);
  if (ready === 0) {
    const selector = Object.entries(deployment.spec?.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = selector === '' ? [] : await kube.list<V1Pod>('v1', 'Pod', { namespace: managerNamespace, labelSelector: selector });
    const why = notReadyReason(pods.filter((p) => !isReady(p)));
    return fail(
      name,
      'cluster',
      `no ready pod (0 of ${replicas})${why !== undefined ? `: ${why}` : ''}`,
      selector === '' ? `${kubectl} describe deployment/${name}` : `${kubectl} describe pods -l ${selector}`,
    );
  }
  const pods = `${ready} of ${replicas} pods ready`;
  if (version === undefined || !/^v?\d+\.\d+/.test(version)) {
    return warn(name, 'cluster', `${pods}, but its image ${image || '(none)'} has no version tag to compare with this client's v${clientVersion}`, installCommand(managerNamespace));
  }
  if (majorMinor(version) !== majorMinor(clientVersion)) {
    return fail(name, 'cluster', `v${version.replace(/^v/, '')} (${pods}), but this client is v${clientVersion}: their major.minor versions must match`, installCommand(managerNamespace));
  }
  return ok(name, 'cluster', `v${version.replace(/^v/, '')}, ${pods}`);
}
