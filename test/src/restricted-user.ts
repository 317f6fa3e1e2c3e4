import { writeFileSync } from 'node:fs';
import type { Kube } from './kube.js';

/** The traffic-manager's namespace, where every user needs to reach the manager. */
const MANAGER_NS = 'tp-system';

/**
 * A ServiceAccount in `namespace` with the rights a developer who may only look needs: read the
 * workloads, Services, ConfigMaps and events of `namespace`, and read and port-forward to the
 * traffic-manager's pods. It cannot modify a workload, and it may not port-forward to the
 * workload's pods, so its intercepted connections take the traffic-manager's relay. Writes a
 * kubeconfig for it (a one-hour token, `namespace` as its default) to `kubeconfigPath`.
 */
export async function createRestrictedUser(kube: Kube, namespace: string, name: string, kubeconfigPath: string): Promise<{ readonly as: string }> {
  const read = ['get', 'list', 'watch'];
  await kube.apply([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace },
      rules: [
        { apiGroups: [''], resources: ['pods', 'services', 'configmaps', 'events'], verbs: read },
        { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets'], verbs: read },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: `${name}-${namespace}`, namespace: MANAGER_NS },
      rules: [
        { apiGroups: [''], resources: ['pods', 'services'], verbs: read },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: read },
        { apiGroups: [''], resources: ['pods/portforward'], verbs: ['create', 'get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: `${name}-${namespace}`, namespace: MANAGER_NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-${namespace}` },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  ]);
  const token = (await kube.kubectl(['-n', namespace, 'create', 'token', name, '--duration', '1h'])).trim();
  const server = (await kube.kubectl(['config', 'view', '--minify', '--raw', '-o', 'jsonpath={.clusters[0].cluster.server}'])).trim();
  const ca = (await kube.kubectl(['config', 'view', '--minify', '--raw', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority-data}'])).trim();
  writeFileSync(kubeconfigPath, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'dev',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': ca } }],
    users: [{ name: 'dev', user: { token } }],
    contexts: [{ name: 'dev', context: { cluster: 'c', user: 'dev', namespace } }],
  }), { mode: 0o600 });
  return { as: `system:serviceaccount:${namespace}:${name}` };
}
