/**
 * The namespace's Pod Security admission level against what an injected pod carries
 * (cluster/src/injector/inject.ts): the traffic-agent container meets `restricted` (no privilege
 * escalation, every capability dropped, RuntimeDefault seccomp, non-root), so it is admitted
 * wherever the app's own containers are. Its init container `tel-agent-init`, added only to
 * intercept a Service whose targetPort is a number, runs iptables as root with NET_ADMIN, which
 * both `baseline` and `restricted` refuse: such a workload's pods would not be created at all
 * after the rollout that adds the agent.
 */
import { kubectlFor, type KubeApi } from '../kube/kube-api.js';
import type { V1Namespace, V1Service } from '../kube/kube-types.js';
import { TpError } from '../errors.js';
import { fail, ok, warn, type Finding } from './finding.js';

export const PSA_ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';

const CHECK = 'pod-security';

export type PodSecurityKube = Pick<KubeApi, 'target' | 'get' | 'list'>;

/** Services of the namespace with a port whose targetPort is a number (or absent: then it is the port). */
export function numericTargetServices(services: readonly V1Service[]): string[] {
  return services
    .filter((s) => s.spec?.type !== 'ExternalName' && (s.spec?.selector ?? undefined) !== undefined)
    .filter((s) => (s.spec?.ports ?? []).some((p) => p.targetPort === undefined || typeof p.targetPort === 'number' || /^\d+$/.test(p.targetPort)))
    .map((s) => s.metadata?.name ?? '')
    .sort();
}

export async function checkPodSecurity(kube: PodSecurityKube, namespace: string): Promise<Finding> {
  let ns: V1Namespace | undefined;
  try {
    ns = await kube.get<V1Namespace>({ apiVersion: 'v1', kind: 'Namespace', name: namespace });
  } catch (err: unknown) {
    if (err instanceof TpError && err.code === 'kube-forbidden') {
      return warn(CHECK, 'cluster', `cannot read namespace ${namespace}'s labels (you may not get namespaces), so its Pod Security level is unknown`);
    }
    throw err;
  }
  if (ns === undefined) {
    return fail(CHECK, 'cluster', `namespace ${namespace} does not exist`, `pass the namespace of your workloads with --namespace`);
  }
  const level = ns.metadata?.labels?.[PSA_ENFORCE_LABEL];
  if (level === undefined || level === '' || level === 'privileged') {
    const which = level === undefined || level === '' ? `no ${PSA_ENFORCE_LABEL} label (the cluster's default level applies)` : `${PSA_ENFORCE_LABEL}=privileged`;
    return ok(CHECK, 'cluster', `namespace ${namespace} has ${which}: the traffic-agent and its NET_ADMIN init container are admitted`);
  }
  const relabel = `${kubectlFor(kube.target)} label namespace ${namespace} ${PSA_ENFORCE_LABEL}=privileged --overwrite`;
  const numeric = numericTargetServices(await kube.list<V1Service>('v1', 'Service', { namespace }));
  const refused = `its Pod Security level ${level} refuses the agent's init container (root, NET_ADMIN for iptables), which intercepting a Service with a numeric targetPort needs`;
  if (numeric.length > 0) {
    return fail(
      CHECK,
      'cluster',
      `namespace ${namespace}: ${refused}; Services ${numeric.join(', ')} have one, so their workloads' pods would not be created once intercepted`,
      `give the container port a name and use it as the Service's targetPort (the agent container meets ${level}), or: ${relabel}`,
    );
  }
  return warn(
    CHECK,
    'cluster',
    `namespace ${namespace}: ${refused}; no Service here has one, and the traffic-agent container itself meets ${level}`,
    `keep Services' targetPorts named, or: ${relabel}`,
  );
}
