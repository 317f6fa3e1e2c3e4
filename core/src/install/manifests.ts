/**
 * Everything `install` creates, as typed objects. Every object carries
 * `app.kubernetes.io/managed-by: telepresence-ts`, which `uninstall --everything` deletes by.
 */
import {
  DEFAULT_AGENT_LOG_LEVEL,
  DEFAULT_PORTS,
  ENV,
  ENV_AGENT_IMAGE,
  INJECTOR_TLS_DIR,
  INJECTOR_WEBHOOK_PATH,
  LABELS,
  MANAGED_BY_VALUE,
  MANAGER_NAMESPACE_LABEL,
  RESOURCE_NAMES,
  type LogLevel,
} from '../contracts.js';
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1LabelSelector,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1ResourceRequirements,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1Toleration,
  V1Volume,
} from '../kube/kube-types.js';
import { canonicalResources } from '../resources.js';
import type { InjectorTls } from './certs.js';

export interface InstallOptions {
  readonly namespace: string;
  readonly managerImage: string;
  readonly injectorImage: string;
  readonly agentImage: string;
  /** Container resources of the traffic-manager and of the agent-injector (default: none set). */
  readonly managerResources?: V1ResourceRequirements;
  readonly injectorResources?: V1ResourceRequirements;
  /** The log level of the traffic-agents injected into workloads (default DEFAULT_AGENT_LOG_LEVEL). */
  readonly agentLogLevel?: LogLevel;
  /**
   * Container resources of those agents (default: the injector's, modest requests and no limits);
   * cpu, memory and ephemeral-storage only, as `resourcesProblem` checks them.
   */
  readonly agentResources?: V1ResourceRequirements;
  /** Where both Deployments' pods may run (default: anywhere). */
  readonly nodeSelector?: Record<string, string>;
  readonly tolerations?: V1Toleration[];
  /** The webhook's failurePolicy (default WEBHOOK_DEFAULTS.failurePolicy). */
  readonly webhookFailurePolicy?: 'Ignore' | 'Fail';
  /** The webhook's timeoutSeconds, 1 to MAX_WEBHOOK_TIMEOUT_SECONDS (default WEBHOOK_DEFAULTS.timeoutSeconds). */
  readonly webhookTimeoutSeconds?: number;
  /**
   * Which namespaces agents may be injected into, on top of the rule that kube-system and the
   * manager's own namespace never are (default: every other namespace).
   */
  readonly injectableNamespaces?: V1LabelSelector;
}

/**
 * The webhook's settings when InstallOptions names none. Ignore: a broken injector must never stop
 * pods from being created. Five seconds: an injection is a ConfigMap read, far below it.
 */
export const WEBHOOK_DEFAULTS = { failurePolicy: 'Ignore', timeoutSeconds: 5 } as const;

/** The API server refuses a webhook timeoutSeconds above 30. */
export const MAX_WEBHOOK_TIMEOUT_SECONDS = 30;

/** The namespaces the injector never injects into: kube-system and the manager's own. */
export function neverInjectedNamespaces(namespace: string): string[] {
  return ['kube-system', namespace];
}

/** The label every namespace carries with its own name (Kubernetes 1.21+). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Label naming the program in its pods; the Deployments select on it. */
const APP_LABEL = 'app.kubernetes.io/name';

/** The labels of every object of the installation in `namespace` (and of the pods of `app`). */
export function installLabels(namespace: string, app?: string): Record<string, string> {
  const base = { [LABELS.managedBy]: MANAGED_BY_VALUE, [MANAGER_NAMESPACE_LABEL]: namespace };
  return app === undefined ? base : { ...base, [APP_LABEL]: app };
}

/** Cluster-scoped names carry the manager namespace, so two installs in two namespaces coexist. */
export function clusterScopedName(base: string, namespace: string): string {
  return `${base}-${namespace}`;
}

export function webhookConfigName(namespace: string): string {
  return `${RESOURCE_NAMES.webhookConfigPrefix}${namespace}`;
}

export function namespaceManifest(o: InstallOptions): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace, labels: installLabels(o.namespace) } };
}

export function serviceAccountManifest(o: InstallOptions, name: string): V1ServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: o.namespace, labels: installLabels(o.namespace, name) } };
}

const READ = ['get', 'list', 'watch'];

export function managerClusterRole(o: InstallOptions): V1ClusterRole {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: clusterScopedName(RESOURCE_NAMES.manager, o.namespace), labels: installLabels(o.namespace, RESOURCE_NAMES.manager) },
    rules: [
      { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets'], verbs: [...READ, 'patch'] },
      { apiGroups: [''], resources: ['pods', 'services', 'events', 'namespaces'], verbs: READ },
      // A bare ReplicaSet does not replace its pods when its template changes: the manager
      // deletes them to roll the agent in or out.
      { apiGroups: [''], resources: ['pods'], verbs: ['delete'] },
      // Agents are rolled in and out by evicting pods, which honours PodDisruptionBudgets and
      // leaves the workload object as it is in Git.
      { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: [...READ, 'create', 'update', 'patch', 'delete'] },
      // Outbound access (GetClusterInfo): the nodes' podCIDRs are the pod subnets, and the
      // ServiceCIDRs (Kubernetes 1.33+) the Service subnets.
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'] },
      { apiGroups: ['networking.k8s.io'], resources: ['servicecidrs'], verbs: ['list'] },
      // Before ServiceCIDRs, the API server names its Service range only when it refuses a
      // ClusterIP outside it: the manager asks with a dry-run create (dryRun=All, nothing is
      // stored), which RBAC checks as a create.
      { apiGroups: [''], resources: ['services'], verbs: ['create'] },
      // Prepare says why new pods lack the agent: the injector Service's endpoints and its webhook.
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] },
      { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [webhookConfigName(o.namespace)], verbs: ['get'] },
    ],
  };
}

export function injectorClusterRole(o: InstallOptions): V1ClusterRole {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: clusterScopedName(RESOURCE_NAMES.injector, o.namespace), labels: installLabels(o.namespace, RESOURCE_NAMES.injector) },
    rules: [
      // Pre-injection (pod template or namespace annotated `telepresence.io/inject-traffic-agent:
      // enabled`): the injector adds the workload's entry to the agents ConfigMap, creating the
      // map when the namespace has none, from the workload and the namespace's Services.
      { apiGroups: [''], resources: ['configmaps'], verbs: [...READ, 'create', 'update', 'patch'] },
      { apiGroups: ['apps'], resources: ['replicasets', 'deployments', 'statefulsets'], verbs: READ },
      { apiGroups: [''], resources: ['services'], verbs: ['list'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    ],
  };
}

export function clusterRoleBinding(o: InstallOptions, name: string): V1ClusterRoleBinding {
  const scoped = clusterScopedName(name, o.namespace);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: scoped, labels: installLabels(o.namespace, name) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: scoped },
    subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace }],
  };
}

/**
 * The value of ENV.agentResources: the resources as JSON in their canonical form, which is also
 * the text Helm's toJson writes for the same values (keys sorted); `{}` when unset.
 */
export function agentResourcesEnvValue(resources: V1ResourceRequirements | undefined): string {
  return JSON.stringify((resources === undefined ? undefined : canonicalResources(resources)) ?? {});
}

/**
 * What the manager and the injector both need to build the same agent configurations: the agent
 * image, the manager's port (its host follows from the shared namespace) and the agents' settings.
 */
function agentBuildEnv(o: InstallOptions): V1EnvVar[] {
  return [
    { name: ENV_AGENT_IMAGE, value: o.agentImage },
    { name: ENV.managerPort, value: String(DEFAULT_PORTS.manager) },
    { name: ENV.agentLogLevel, value: o.agentLogLevel ?? DEFAULT_AGENT_LOG_LEVEL },
    { name: ENV.agentResources, value: agentResourcesEnvValue(o.agentResources) },
  ];
}

const namespaceFromDownwardApi = { name: ENV.managerNamespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } };

/**
 * A one-container Deployment of one of our in-cluster programs, as install creates them: one
 * replica, its own ServiceAccount, selected by the program's name label.
 */
function programDeployment(
  o: InstallOptions,
  name: string,
  container: Omit<V1Container, 'name' | 'imagePullPolicy'> & { image: string },
  volumes?: V1Volume[],
): V1Deployment {
  const { image, ...rest } = container;
  const resources = name === RESOURCE_NAMES.manager ? o.managerResources : o.injectorResources;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: o.namespace, labels: installLabels(o.namespace, name) },
    spec: {
      replicas: 1,
      selector: { matchLabels: { [APP_LABEL]: name } },
      template: {
        metadata: { labels: installLabels(o.namespace, name) },
        spec: {
          serviceAccountName: name,
          containers: [{ name, image, imagePullPolicy: 'IfNotPresent', ...rest, ...(resources === undefined ? {} : { resources }) }],
          ...(volumes === undefined ? {} : { volumes }),
          ...(o.nodeSelector === undefined ? {} : { nodeSelector: o.nodeSelector }),
          ...(o.tolerations === undefined ? {} : { tolerations: o.tolerations }),
        },
      },
    },
  };
}

export function managerDeployment(o: InstallOptions): V1Deployment {
  return programDeployment(o, RESOURCE_NAMES.manager, {
    image: o.managerImage,
    ports: [{ name: RESOURCE_NAMES.managerPortName, containerPort: DEFAULT_PORTS.manager, protocol: 'TCP' }],
    env: [
      namespaceFromDownwardApi,
      // Agents take connections from these addresses for the manager's routing probes.
      { name: ENV.managerPodIps, valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
      ...agentBuildEnv(o),
    ],
    // A TCP probe: the port serves gRPC (HTTP/2), which an httpGet probe cannot speak.
    readinessProbe: { tcpSocket: { port: RESOURCE_NAMES.managerPortName }, periodSeconds: 2 },
  });
}

export function managerService(o: InstallOptions): V1Service {
  const name = RESOURCE_NAMES.manager;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: o.namespace, labels: installLabels(o.namespace, name) },
    spec: {
      selector: { [APP_LABEL]: name },
      ports: [{ name: RESOURCE_NAMES.managerPortName, port: DEFAULT_PORTS.manager, targetPort: RESOURCE_NAMES.managerPortName, protocol: 'TCP' }],
    },
  };
}

export function injectorDeployment(o: InstallOptions): V1Deployment {
  return programDeployment(
    o,
    RESOURCE_NAMES.injector,
    {
      image: o.injectorImage,
      ports: [{ name: RESOURCE_NAMES.injectorPortName, containerPort: DEFAULT_PORTS.injector, protocol: 'TCP' }],
      // The agents' build settings, as the manager has them: pre-injection builds the entry the
      // manager would.
      env: [namespaceFromDownwardApi, ...agentBuildEnv(o), { name: ENV.injectorPort, value: String(DEFAULT_PORTS.injector) }],
      volumeMounts: [{ name: 'tls', mountPath: INJECTOR_TLS_DIR, readOnly: true }],
      readinessProbe: { tcpSocket: { port: RESOURCE_NAMES.injectorPortName }, periodSeconds: 2 },
    },
    [{ name: 'tls', secret: { secretName: RESOURCE_NAMES.injectorTlsSecret } }],
  );
}

export function injectorService(o: InstallOptions): V1Service {
  const name = RESOURCE_NAMES.injector;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: o.namespace, labels: installLabels(o.namespace, name) },
    spec: {
      selector: { [APP_LABEL]: name },
      ports: [{ name: RESOURCE_NAMES.injectorPortName, port: 443, targetPort: RESOURCE_NAMES.injectorPortName, protocol: 'TCP' }],
    },
  };
}

export function injectorTlsSecret(o: InstallOptions, tls: InjectorTls): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: RESOURCE_NAMES.injectorTlsSecret, namespace: o.namespace, labels: installLabels(o.namespace, RESOURCE_NAMES.injector) },
    type: 'kubernetes.io/tls',
    stringData: { 'tls.crt': tls.cert, 'tls.key': tls.key, 'ca.crt': tls.caCert },
  };
}

export function webhookConfiguration(o: InstallOptions, caCertPem: string): V1MutatingWebhookConfiguration {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: webhookConfigName(o.namespace), labels: installLabels(o.namespace, RESOURCE_NAMES.injector) },
    webhooks: [
      {
        name: `agent-injector.${o.namespace}.telepresence.io`,
        clientConfig: {
          service: { name: RESOURCE_NAMES.injector, namespace: o.namespace, path: INJECTOR_WEBHOOK_PATH, port: 443 },
          caBundle: Buffer.from(caCertPem, 'utf8').toString('base64'),
        },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        failurePolicy: o.webhookFailurePolicy ?? WEBHOOK_DEFAULTS.failurePolicy,
        timeoutSeconds: o.webhookTimeoutSeconds ?? WEBHOOK_DEFAULTS.timeoutSeconds,
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        reinvocationPolicy: 'Never',
        namespaceSelector: {
          ...(o.injectableNamespaces?.matchLabels === undefined ? {} : { matchLabels: o.injectableNamespaces.matchLabels }),
          matchExpressions: [
            { key: NAMESPACE_NAME_LABEL, operator: 'NotIn', values: neverInjectedNamespaces(o.namespace) },
            ...(o.injectableNamespaces?.matchExpressions ?? []),
          ],
        },
      },
    ],
  };
}

/** Everything but the TLS Secret and the webhook (which need the certificates), in apply order. */
export function baseManifests(o: InstallOptions) {
  return [
    namespaceManifest(o),
    serviceAccountManifest(o, RESOURCE_NAMES.manager),
    serviceAccountManifest(o, RESOURCE_NAMES.injector),
    managerClusterRole(o),
    injectorClusterRole(o),
    clusterRoleBinding(o, RESOURCE_NAMES.manager),
    clusterRoleBinding(o, RESOURCE_NAMES.injector),
    managerService(o),
    injectorService(o),
  ];
}
