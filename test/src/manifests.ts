/**
 * Kubernetes objects the e2e suites create, as plain functions of their parameters so a suite
 * reads as "what" and the YAML-ish detail lives here once.
 */

export const ECHO_IMAGE = 'tp-local/echo:1';
/** The port the echo server listens on inside its container. */
export const ECHO_CONTAINER_PORT = 8080;

type Labels = Readonly<Record<string, string>>;

// Nothing can be pulled from the internet: every image must already be on the node.
const PULL_POLICY = 'IfNotPresent';
// Tiny requests so several replicas fit on the 2-core test node next to the control plane.
const SMALL = { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } };

export function namespace(name: string, labels: Labels = {}): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

function echoContainer(): object {
  return {
    name: 'echo',
    image: ECHO_IMAGE,
    imagePullPolicy: PULL_POLICY,
    ports: [{ name: 'http', containerPort: ECHO_CONTAINER_PORT }],
    readinessProbe: {
      httpGet: { path: '/healthz', port: ECHO_CONTAINER_PORT },
      periodSeconds: 1,
      failureThreshold: 3,
    },
    resources: SMALL,
  };
}

/** The echo server as a Deployment; pods are labelled `app=<name>`. */
export function echoDeployment(ns: string, name: string, replicas: number): object {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { terminationGracePeriodSeconds: 1, containers: [echoContainer()] },
      },
    },
  };
}

/** A ClusterIP Service on `port` in front of `app=<name>` pods' echo port. */
export function clusterIpService(ns: string, name: string, port: number): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: {
      type: 'ClusterIP',
      selector: { app: name },
      ports: [{ name: 'http', port, targetPort: ECHO_CONTAINER_PORT, protocol: 'TCP' }],
    },
  };
}

/**
 * A run-to-completion pod on the echo image (the one image that is known to be on the node)
 * running a Node script: the in-cluster stand-in for curl, wget and nslookup.
 */
export function nodeScriptPod(
  ns: string,
  name: string,
  script: string,
  env: Readonly<Record<string, string>> = {},
  labels: Labels = {},
): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'main',
          image: ECHO_IMAGE,
          imagePullPolicy: PULL_POLICY,
          command: ['node', '-e', script],
          env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
          resources: SMALL,
        },
      ],
    },
  };
}

/** The echo server as a bare pod (no controller), e.g. a target for an admission webhook. */
export function echoPod(ns: string, name: string, labels: Labels = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: { terminationGracePeriodSeconds: 1, containers: [echoContainer()] },
  };
}

/**
 * A one-replica Deployment `shop` of the echo server (port `http`), its Service on port 80, and a
 * pod `client` to send requests from: the smallest app to install and intercept.
 */
export function shopAndClient(ns: string): object[] {
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'shop' } },
        template: {
          metadata: { labels: { app: 'shop' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'app', image: ECHO_IMAGE, imagePullPolicy: PULL_POLICY, ports: [{ name: 'http', containerPort: ECHO_CONTAINER_PORT }] }],
          },
        },
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: ns }, spec: { selector: { app: 'shop' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'client', namespace: ns },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: PULL_POLICY }] },
    },
  ];
}

export interface MutatingWebhookParams {
  /** Cluster-scoped name of the configuration. */
  readonly name: string;
  readonly url: string;
  readonly caBundlePem: string;
  /**
   * The only namespace the webhook may see. Required on purpose: a webhook from a test must
   * never touch pods outside the test's own namespace.
   */
  readonly namespace: string;
  /** Further narrows the pods sent to the webhook. */
  readonly objectSelector?: { readonly matchLabels: Labels };
  readonly failurePolicy: 'Fail' | 'Ignore';
  readonly timeoutSeconds?: number;
}

/** A MutatingWebhookConfiguration for pod CREATE, reaching the webhook by URL. */
export function mutatingWebhookConfiguration(p: MutatingWebhookParams): object {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: p.name },
    webhooks: [
      {
        // Webhook names must be fully qualified (at least three DNS labels).
        name: `${p.name}.webhooks.telepresence-ts.test`,
        clientConfig: { url: p.url, caBundle: Buffer.from(p.caBundlePem).toString('base64') },
        rules: [
          { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
        ],
        // The API server labels every namespace with its own name (since 1.22), so this matches
        // exactly one namespace.
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.namespace } },
        ...(p.objectSelector ? { objectSelector: p.objectSelector } : {}),
        failurePolicy: p.failurePolicy,
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: p.timeoutSeconds ?? 5,
      },
    ],
  };
}
