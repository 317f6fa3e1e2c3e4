/**
 * The shared names of telepresence-ts: everything the client, traffic-manager, agent-injector and
 * traffic-agent must agree on is defined here, once, and imported by all of them.
 */

/** Prefix of every label and annotation key we own. */
export const KEY_PREFIX = 'telepresence.io/';

/** The namespace the traffic-manager (and its injector) is installed into unless told otherwise. */
export const DEFAULT_MANAGER_NAMESPACE = 'tp-system';

/** The ConfigMap, in each workload namespace, holding one agent configuration per workload. */
export const AGENTS_CONFIGMAP = 'telepresence-agents';

/** Names of the Kubernetes objects the install creates in the manager namespace. */
export const RESOURCE_NAMES = {
  /** Deployment and Service of the traffic-manager; the Service port is named `api`. */
  manager: 'traffic-manager',
  managerPortName: 'api',
  /** Deployment and Service of the agent-injector webhook; the Service port is named `https`. */
  injector: 'agent-injector',
  injectorPortName: 'https',
  /** The MutatingWebhookConfiguration; suffixed with the manager namespace since it is cluster-scoped. */
  webhookConfigPrefix: 'agent-injector-webhook-',
  /** The Secret holding the webhook's TLS key pair and CA. */
  injectorTlsSecret: 'agent-injector-tls',
} as const;

/** The sidecar container the injector adds to an intercepted pod. */
export const AGENT_CONTAINER_NAME = 'traffic-agent';

/** Default ports. The manager's is the gRPC API; the agent's is the first port it forwards. */
export const DEFAULT_PORTS = {
  manager: 8081,
  agent: 9900,
  /** Container port of the webhook; the Service exposes it as 443. */
  injector: 8443,
} as const;

/**
 * The traffic-manager's dial port (ClusterInfo.dial_port), on its pod's loopback only: clients
 * reach it through port-forwards, for the outbound fast path. Not a container port, so not among
 * DEFAULT_PORTS, which name what Services and containers expose.
 */
export const MANAGER_DIAL_PORT = 8082;

/**
 * The first frame the traffic-manager sends on every stream accepted at its dial port, before it
 * reads the client's header (manager.proto, "Outbound fast path"), as JSON in direct-stream
 * framing. A port-forward stream opens before its pod is asked for the port: this frame proves
 * the whole path is up, so a client hands a flow only to a stream that can carry it at once.
 */
export const DIAL_PORT_PARKED = '{"parked":true}';

/**
 * The HTTP/2 receive window, per stream, of every gRPC party that carries tunnel data (the
 * daemon's and the agent's channels to the manager, and the manager's server). HTTP/2's default
 * of 64 KiB per round trip caps a tunnel behind a port-forward at 10-20 MB/s; 1 MiB does not.
 */
export const TUNNEL_WINDOW_BYTES = 1 << 20;

/** gRPC channel options for the daemon's and the agent's clients of the manager. */
export const TUNNEL_CHANNEL_OPTIONS = { 'grpc-node.flow_control_window': TUNNEL_WINDOW_BYTES } as const;

/** HTTP path answered by every in-cluster program while it is able to serve. */
export const HEALTHZ_PATH = '/healthz';

/** Label keys (selectors must be at most 63 characters after the prefix). */
export const LABELS = {
  /** Name of the workload that owns an injected pod. */
  workloadName: `${KEY_PREFIX}workload-name`,
  /** Kind of that workload (Deployment, ReplicaSet, StatefulSet). */
  workloadKind: `${KEY_PREFIX}workload-kind`,
  /** `true` on pods that carry a traffic-agent. */
  agentInjected: `${KEY_PREFIX}agent-injected`,
  /** Marks objects created by the install, so that uninstall can find them. */
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

/** Value of `LABELS.managedBy` on every object we create. */
export const MANAGED_BY_VALUE = 'telepresence-ts';

/** Annotation keys. */
export const ANNOTATIONS = {
  /**
   * On a pod template: `enabled` to inject an agent when its pods are created, before any
   * intercept (pre-injection), `disabled` to never inject one. On a Namespace object: `enabled`
   * pre-injects every workload of the namespace whose pod template does not say `disabled`.
   */
  injectTrafficAgent: `${KEY_PREFIX}inject-traffic-agent`,
  /**
   * On a pod template: bumped to roll a workload out when its pods cannot be evicted (a
   * PodDisruptionBudget allows no disruption) or when it has one replica (a rollout keeps it serving).
   */
  restartedAt: `${KEY_PREFIX}restarted-at`,
  /**
   * On a workload (not its template): how the traffic-manager replaces its pods when an agent comes
   * or goes. `eviction` always evicts, even a single replica (which then serves nothing until its
   * replacement is ready); `rollout` always sets `restartedAt` (the workload's spec changes).
   */
  restartBy: `${KEY_PREFIX}restart-by`,
} as const;

/** Values understood by `ANNOTATIONS.restartBy`. */
export const RESTART_BY_VALUES = ['eviction', 'rollout'] as const;

/** Values understood by `ANNOTATIONS.injectTrafficAgent`. */
export const INJECT_VALUES = ['enabled', 'disabled'] as const;
export type InjectValue = (typeof INJECT_VALUES)[number];

/** Environment variables read by the in-cluster programs (each parses them in its own env.ts). */
export const ENV = {
  /** `debug` | `info` | `warn` | `error`, for every program. */
  logLevel: 'TP_LOG_LEVEL',
  /** Namespace of the traffic-manager; set from the downward API in the manager and injector. */
  managerNamespace: 'TP_MANAGER_NAMESPACE',
  /** gRPC port the traffic-manager listens on. */
  managerPort: 'TP_MANAGER_PORT',
  /** Host name the agent dials to reach the manager. */
  managerHost: 'TP_MANAGER_HOST',
  /** HTTPS port of the agent-injector webhook. */
  injectorPort: 'TP_INJECTOR_PORT',
  /** Port of the agent's own API. */
  agentPort: 'TP_AGENT_PORT',
  /** Name of the workload the agent serves (its key in the agents ConfigMap). */
  agentName: 'TP_AGENT_NAME',
  /** Namespace of the agent's pod (downward API `metadata.namespace`). */
  agentNamespace: 'TP_AGENT_NAMESPACE',
  /** Name and IP of the agent's pod (downward API `metadata.name`, `status.podIP`). */
  podName: 'TP_POD_NAME',
  podIp: 'TP_POD_IP',
  /** Every IP of the traffic-manager's pod, comma-separated (downward API `status.podIPs`). */
  managerPodIps: 'TP_MANAGER_POD_IPS',
  /** Path of the agent's configuration file (its ConfigMap entry, mounted by the injector). */
  agentConfigPath: 'TP_AGENT_CONFIG',
  /**
   * For the agent's `init` mode (the `tel-agent-init` container): the numeric target ports to
   * redirect, as comma-separated `containerPort:agentPort` pairs, e.g. `8080:9901,8443:9902`.
   */
  agentInitPorts: 'TP_AGENT_INIT_PORTS',
  /** Paths of the agent-injector's TLS serving certificate and key (PEM), mounted from its Secret. */
  injectorTlsCert: 'TP_INJECTOR_TLS_CERT',
  injectorTlsKey: 'TP_INJECTOR_TLS_KEY',
  /**
   * Outbound access, set by an admin on the traffic-manager when discovery gets the cluster's
   * subnets wrong: comma-separated CIDRs that replace the discovered pod (resp. Service) subnets
   * in `ClusterInfo`, e.g. `10.244.0.0/16,fd00:10:244::/56`.
   */
  podCidrs: 'TP_POD_CIDRS',
  serviceCidrs: 'TP_SERVICE_CIDRS',
  /**
   * Set by `install` on the traffic-manager and the agent-injector, which both build agent
   * configurations: the log level written into each (default DEFAULT_AGENT_LOG_LEVEL), apart
   * from the program's own TP_LOG_LEVEL.
   */
  agentLogLevel: 'TP_AGENT_LOG_LEVEL',
  /**
   * Likewise: the injected agent container's resources as JSON, `{"limits":{...},"requests":{...}}`
   * of cpu, memory and ephemeral-storage quantities; `{}` or unset: the injector's default.
   */
  agentResources: 'TP_AGENT_RESOURCES',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The traffic-agents' log level when install and the chart name none (ENV.agentLogLevel). */
export const DEFAULT_AGENT_LOG_LEVEL: LogLevel = 'info';

/**
 * The injected agent container's resources when install and the chart name none
 * (ENV.agentResources): modest requests so the scheduler accounts for the agent (Node's resident
 * size is ~40 MiB); no limits: throttling or OOM-killing the agent would cut the app's traffic.
 */
export const DEFAULT_AGENT_RESOURCES: { readonly requests: Readonly<Record<string, string>> } = { requests: { cpu: '25m', memory: '64Mi' } };

/** `name=quantity,...`, as install's resource flags take them. */
export function formatResourceList(list: Readonly<Record<string, string>>): string {
  return Object.entries(list)
    .map(([name, quantity]) => `${name}=${quantity}`)
    .join(',');
}

/** `traffic-manager.<namespace>`: the in-cluster DNS name of the manager Service. */
export function managerServiceHost(namespace: string = DEFAULT_MANAGER_NAMESPACE): string {
  return `${RESOURCE_NAMES.manager}.${namespace}`;
}

/** Env var set by `install` on the traffic-manager (and injector): the traffic-agent image to inject. */
export const ENV_AGENT_IMAGE = 'TP_AGENT_IMAGE';

/** Where the agent-injector's Deployment mounts Secret `agent-injector-tls` (tls.crt, tls.key, ca.crt). */
export const INJECTOR_TLS_DIR = '/etc/agent-injector/tls';

/** The HTTPS path the API server calls on the agent-injector for each new pod. */
export const INJECTOR_WEBHOOK_PATH = '/agent-injector/mutate';

declare const __TP_IMAGE_REGISTRY__: string | undefined;

/**
 * Where `install` takes the cluster programs' images from unless `--registry` names another: the
 * one setting of a release (esbuild's define from TP_IMAGE_REGISTRY at build time, see
 * scripts/release-settings.sh). A build without it, as in development, uses `tp-local`: images
 * built on this machine and loaded into the test cluster's nodes.
 */
export const DEFAULT_IMAGE_REGISTRY: string =
  typeof __TP_IMAGE_REGISTRY__ === 'string' && __TP_IMAGE_REGISTRY__ !== '' ? __TP_IMAGE_REGISTRY__ : 'tp-local';

/** The image names of the three cluster programs, under a registry; `install` tags them with the version. */
export const IMAGE_NAMES = {
  manager: 'traffic-manager',
  injector: 'agent-injector',
  agent: 'traffic-agent',
} as const;

/** The image repositories of the three cluster programs in DEFAULT_IMAGE_REGISTRY. */
export const IMAGE_REPOSITORIES = {
  manager: `${DEFAULT_IMAGE_REGISTRY}/${IMAGE_NAMES.manager}`,
  injector: `${DEFAULT_IMAGE_REGISTRY}/${IMAGE_NAMES.injector}`,
  agent: `${DEFAULT_IMAGE_REGISTRY}/${IMAGE_NAMES.agent}`,
} as const;

/**
 * What a traffic-agent answers, and then closes, on a connection that the traffic-manager's pod
 * opened to one of its intercepted ports (`SessionInfo.manager_pod_ips`): after a rollout,
 * PrepareIntercept probes the Service until its connections land on agents only, so that the
 * requests sent once `intercept` returns reach the workstation rather than a pod on its way out.
 */
export const ROUTING_PROBE_REPLY = 'telepresence-ts traffic-agent\n';

/**
 * What a routing probe sends first. The manager's pod also dials agents' ports for workstations
 * (outbound access), so an agent tells a probe from those by these bytes, not by the address.
 */
export const ROUTING_PROBE_REQUEST = 'telepresence-ts routing probe\n';

/** Env var of the traffic-manager: how long PrepareIntercept waits for a pod with the agent, in seconds (default 120). */
export const ENV_PREPARE_TIMEOUT_SECONDS = 'TP_PREPARE_TIMEOUT_SECONDS';

/**
 * The traffic-manager image's argument for its one-shot mode (`node manager.js remove-agents`,
 * the Helm chart's pre-delete hook): remove every agent configuration, wait for the pods with an
 * agent to go, exit. Without an argument the image serves.
 */
export const MANAGER_REMOVE_AGENTS_MODE = 'remove-agents';

/**
 * How long that mode waits, at most, for the pods with an agent to go: the running
 * traffic-manager evicts them one after another, each once its replacement is ready, which takes
 * a workload of a few replicas well under two minutes (as a prepare's rollout, also 120 s).
 * The chart's hook Job gets a deadline a little above it.
 */
export const REMOVE_AGENTS_WAIT_SECONDS = 120;

/**
 * On every object `install` creates: the manager namespace it belongs to, so that
 * `uninstall --everything` removes one installation and leaves another (in another namespace) alone.
 */
export const MANAGER_NAMESPACE_LABEL = `${KEY_PREFIX}manager-namespace`;

/**
 * Variables the client adds to an intercepted container's environment for the local process
 * (Telepresence's names, so that existing scripts keep working).
 */
export const INTERCEPT_ENV = {
  /** Where the container's volumes are mounted on the workstation (empty when not mounted). */
  root: 'TELEPRESENCE_ROOT',
  /** The container's mount paths, colon-separated; each is at `$TELEPRESENCE_ROOT<path>`. */
  mounts: 'TELEPRESENCE_MOUNTS',
  /** The intercept's id, `<session>:<name>`. */
  interceptId: 'TELEPRESENCE_INTERCEPT_ID',
  /** The intercepted container's name. */
  container: 'TELEPRESENCE_CONTAINER',
} as const;

/**
 * The most body bytes of each request and response a traffic watcher may ask for (WatchTraffic
 * `body_bytes`): the traffic-manager cuts a request to it, the CLI's `--bodies` refuses more.
 * Events travel in batches of up to 100, so bodies are kept small.
 */
export const MAX_WATCH_BODY_BYTES = 64 * 1024;
