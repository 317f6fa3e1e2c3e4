/**
 * The current user's rights for what each command does with the Kubernetes API, asked with
 * SelfSubjectAccessReviews (what `kubectl auth can-i` asks). The lists follow the client's own
 * calls: connect finds the traffic-manager pod (core/src/kube/manager-pod.ts) and port-forwards to
 * it; list and intercept read the namespace's workloads and agents ConfigMap (Daemon.list); an
 * intercept port-forwards to the workload's pods for direct tunnels and volumes (without that it
 * is relayed by the manager and has no volumes); install applies the manifests of
 * core/src/install/manifests.ts. Everything else (rollouts, agents) the traffic-manager does with
 * its own rights.
 */
import { fail, ok, warn, type Finding } from './finding.js';
import { installCommand } from './installation.js';

/** One question, as a SelfSubjectAccessReview's resourceAttributes. */
export interface AccessQuestion {
  readonly verb: string;
  /** Plural resource name: `pods`, `deployments`. */
  readonly resource: string;
  /** API group; '' (the core group) when absent. */
  readonly group?: string;
  readonly subresource?: string;
  /** Absent for cluster-scoped resources. */
  readonly namespace?: string;
}

export interface AccessAnswer {
  readonly allowed: boolean;
}

/** The port: the API server's answers about the current user. */
export interface AccessReviewer {
  canI(question: AccessQuestion): Promise<AccessAnswer>;
  /** The user's name as the API server sees it (SelfSubjectReview); undefined when it will not say. */
  whoami(): Promise<string | undefined>;
}

/** `get deployments.apps`, `create pods/portforward`, as people read them. */
export function describeAccess(q: AccessQuestion): string {
  const resource = `${q.resource}${q.subresource !== undefined ? `/${q.subresource}` : ''}${q.group !== undefined && q.group !== '' ? `.${q.group}` : ''}`;
  return `${q.verb} ${resource}`;
}

interface RightsCheck {
  readonly check: string;
  /** What the rights are for, in the message. */
  readonly purpose: string;
  readonly questions: readonly AccessQuestion[];
  /** fail: the command cannot work at all; warn: it works with less. */
  readonly missing: 'fail' | 'warn';
  /** What to do instead of (or besides) granting the rights. */
  readonly otherwise?: string;
}

/** The rights each command needs, grouped as the findings report them. */
export function rightsChecks(managerNamespace: string, namespace: string): RightsCheck[] {
  const m = managerNamespace;
  return [
    {
      check: 'rbac-connect',
      purpose: `connect (find and port-forward to the traffic-manager in ${m})`,
      missing: 'fail',
      questions: [
        { verb: 'get', resource: 'deployments', group: 'apps', namespace: m },
        { verb: 'list', resource: 'pods', namespace: m },
        { verb: 'create', resource: 'pods', subresource: 'portforward', namespace: m },
      ],
    },
    {
      check: 'rbac-intercept',
      purpose: `list and intercept (read the workloads of ${namespace})`,
      missing: 'fail',
      questions: [
        { verb: 'list', resource: 'deployments', group: 'apps', namespace },
        { verb: 'list', resource: 'replicasets', group: 'apps', namespace },
        { verb: 'list', resource: 'statefulsets', group: 'apps', namespace },
        { verb: 'get', resource: 'configmaps', namespace },
      ],
    },
    {
      check: 'rbac-volumes',
      purpose: `direct tunnels and volumes of intercepts in ${namespace} (port-forward to the workload's pods)`,
      missing: 'warn',
      otherwise: 'without it, intercepts are relayed by the traffic-manager and come without volumes',
      questions: [{ verb: 'create', resource: 'pods', subresource: 'portforward', namespace }],
    },
    {
      check: 'rbac-install',
      purpose: `install and uninstall (an admin's job)`,
      missing: 'warn',
      otherwise: `only whoever runs \`${installCommand(m)}\` needs them`,
      questions: [
        { verb: 'create', resource: 'namespaces' },
        { verb: 'create', resource: 'clusterroles', group: 'rbac.authorization.k8s.io' },
        { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
        { verb: 'create', resource: 'mutatingwebhookconfigurations', group: 'admissionregistration.k8s.io' },
        { verb: 'create', resource: 'deployments', group: 'apps', namespace: m },
        { verb: 'create', resource: 'services', namespace: m },
        { verb: 'create', resource: 'serviceaccounts', namespace: m },
        { verb: 'get', resource: 'secrets', namespace: m },
        { verb: 'create', resource: 'secrets', namespace: m },
      ],
    },
  ];
}

/**
 * The kubectl commands an admin runs to grant the missing namespaced rights: one Role and
 * RoleBinding per namespace, named after the user. Cluster-scoped rights (install's) get no
 * command: those belong to a cluster admin, not to a Role.
 */
export function grantCommand(missing: readonly AccessQuestion[], user: string | undefined): string {
  const byNamespace = new Map<string, AccessQuestion[]>();
  for (const q of missing) {
    if (q.namespace === undefined) continue;
    byNamespace.set(q.namespace, [...(byNamespace.get(q.namespace) ?? []), q]);
  }
  const who = user ?? '<you>';
  const role = 'telepresence-user';
  const commands: string[] = [];
  for (const [ns, qs] of byNamespace) {
    const verbs = [...new Set(qs.map((q) => q.verb))].join(',');
    const resources = [...new Set(qs.map((q) => `${q.resource}${q.subresource !== undefined ? `/${q.subresource}` : ''}${q.group !== undefined && q.group !== '' ? `.${q.group}` : ''}`))].join(',');
    commands.push(`kubectl -n ${ns} create role ${role} --verb=${verbs} --resource=${resources}`);
    commands.push(`kubectl -n ${ns} create rolebinding ${role} --role=${role} --user=${who}`);
  }
  return commands.length === 0 ? '' : `an admin runs: ${commands.join(' && ')}`;
}

/** One finding per command group: which of its rights the user lacks. */
export async function checkRbac(reviewer: AccessReviewer, managerNamespace: string, namespace: string): Promise<Finding[]> {
  const groups = rightsChecks(managerNamespace, namespace);
  const answers = await Promise.all(groups.map((g) => Promise.all(g.questions.map((q) => reviewer.canI(q)))));
  let user: string | undefined;
  let asked = false;
  const findings: Finding[] = [];
  for (const [i, g] of groups.entries()) {
    const missing = g.questions.filter((_, j) => answers[i]?.[j]?.allowed !== true);
    if (missing.length === 0) {
      findings.push(ok(g.check, 'permissions', `you have the rights for ${g.purpose}`));
      continue;
    }
    if (!asked) {
      asked = true;
      user = await reviewer.whoami().catch(() => undefined);
    }
    const message = `you may not ${missing.map((q) => `${describeAccess(q)}${q.namespace !== undefined ? ` in ${q.namespace}` : ''}`).join(', ')}: needed for ${g.purpose}${g.otherwise !== undefined ? `; ${g.otherwise}` : ''}`;
    const grant = g.check === 'rbac-install' ? `ask a cluster admin to run \`${installCommand(managerNamespace)}\`` : grantCommand(missing, user);
    findings.push(g.missing === 'fail' ? fail(g.check, 'permissions', message, grant) : warn(g.check, 'permissions', message, grant));
  }
  return findings;
}
