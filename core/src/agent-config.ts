/**
 * The traffic-agent's configuration: one entry per workload in the `telepresence-agents`
 * ConfigMap of the workload's namespace (key: the workload's name, value: this object as JSON).
 *
 * The traffic-manager alone writes it (on prepare); the agent-injector reads it to build the
 * sidecar when a pod of the workload is created; the traffic-agent reads it (mounted from the
 * ConfigMap) to know what to listen on and where to pass traffic; the client reads it to show
 * which ports can be intercepted. This module is the one definition all four share.
 */

import type { LogLevel } from './contracts.js';
import type { V1ResourceRequirements } from './kube/kube-types.js';
import { resourcesProblem } from './resources.js';

export { canonicalResources, resourcesProblem } from './resources.js';

/**
 * Bumped when the shape changes incompatibly; readers refuse versions they do not know. Optional
 * fields added since (`resources`, a container's `replaced`) did not bump it: an entry without them stays valid.
 */
export const AGENT_CONFIG_VERSION = 1;

export type WorkloadKind = 'Deployment' | 'ReplicaSet' | 'StatefulSet';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['Deployment', 'ReplicaSet', 'StatefulSet'];

/**
 * One connection from a Service port to a container port, which the agent takes over.
 *
 * How the traffic reaches the agent depends on the Service's target port:
 * - symbolic (`targetPort: http`): the injector renames the app container's port `http` and gives
 *   the agent container a port named `http` on `agentPort`, so the Service now selects the agent;
 *   probes that named the port get its number instead;
 * - numeric (`targetPort: 8080`): an init container redirects incoming TCP for `containerPort` to
 *   `agentPort` with iptables (the agent's own connections to the app are not redirected).
 */
export interface AgentIntercept {
  serviceName: string;
  serviceUid: string;
  /** Empty when the Service port has no name. */
  servicePortName: string;
  servicePort: number;
  protocol: 'TCP';
  /** True when the Service's targetPort is a number (or absent), false when it names a port. */
  targetPortNumeric: boolean;
  /** The app's port name, when it has one (and always for symbolic target ports). */
  containerPortName: string;
  /** The app's port number in the pod's network namespace. */
  containerPort: number;
  /**
   * Where the agent listens: one port per app port. Service ports that lead to the same container
   * port share it (their connections are alike once in the pod); other intercepts never do.
   */
  agentPort: number;
}

/** One app container of the pod and the connections into it that the agent serves. */
export interface AgentContainer {
  name: string;
  intercepts: AgentIntercept[];
  /** Where the agent mounts this container's volumes so the client can reach them. */
  mountPoint: string;
  /**
   * Set while a replace holds the container: the injector makes its pods without it, and the
   * agent alone serves its ports (with its environment and volumes). Absent otherwise, never
   * false, so that an entry without a replace keeps the hash it had before the field existed.
   */
  replaced?: true;
}

export interface AgentConfig {
  version: typeof AGENT_CONFIG_VERSION;
  /** The workload's name; also the ConfigMap key. */
  agentName: string;
  namespace: string;
  workloadName: string;
  workloadKind: WorkloadKind;
  /** The traffic-agent image the injector puts into the pod. */
  agentImage: string;
  /** The traffic-manager, as the agent dials it: `traffic-manager.<ns>` and its gRPC port. */
  managerHost: string;
  managerPort: number;
  /** The port of the agent's own API (health); intercept ports come after it. */
  agentApiPort: number;
  /**
   * Log level of the agent: the installation's agent log level, not the manager's own. The agent
   * takes an unknown one for `info` rather than refusing its configuration.
   */
  logLevel: LogLevel;
  /**
   * The agent container's resources, in `canonicalResources`' form; absent, the injector's
   * default. Absent rather than empty when unset, so that entries written before the field
   * existed keep their hash and their pods are not replaced for nothing.
   */
  resources?: V1ResourceRequirements;
  containers: AgentContainer[];
}

/** Thrown by `parseAgentConfig` for an entry that is not a valid configuration. */
export class AgentConfigError extends Error {
  constructor(
    readonly agentName: string,
    message: string,
  ) {
    super(`agent configuration "${agentName}": ${message}`);
    this.name = 'AgentConfigError';
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536;
}

/**
 * Parses and checks one ConfigMap entry. Checks what a reader relies on: the version, the
 * identity fields, and that every port is a port and every agent port is unique.
 */
export function parseAgentConfig(key: string, text: string): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AgentConfigError(key, `not JSON (${(err as Error).message})`);
  }
  if (!isRecord(raw)) throw new AgentConfigError(key, 'not an object');
  if (raw['version'] !== AGENT_CONFIG_VERSION) {
    throw new AgentConfigError(key, `version ${String(raw['version'])} is not ${AGENT_CONFIG_VERSION}; the traffic-manager and this component are of different releases`);
  }
  for (const field of ['agentName', 'namespace', 'workloadName', 'agentImage', 'managerHost'] as const) {
    if (typeof raw[field] !== 'string' || raw[field] === '') throw new AgentConfigError(key, `${field} must be a non-empty string`);
  }
  if (raw['agentName'] !== key) throw new AgentConfigError(key, `agentName is "${String(raw['agentName'])}", not its key`);
  if (!WORKLOAD_KINDS.includes(raw['workloadKind'] as WorkloadKind)) {
    throw new AgentConfigError(key, `workloadKind must be one of ${WORKLOAD_KINDS.join(', ')}`);
  }
  if (!isPort(raw['managerPort']) || !isPort(raw['agentApiPort'])) throw new AgentConfigError(key, 'managerPort and agentApiPort must be ports');
  if (raw['resources'] !== undefined) {
    const problem = resourcesProblem(raw['resources']);
    // The injector puts them into the pod as they are: refused here, not by the API server.
    if (problem !== undefined) throw new AgentConfigError(key, `resources: ${problem}`);
  }
  if (!Array.isArray(raw['containers'])) throw new AgentConfigError(key, 'containers must be a list');
  // Each agent port and the app port it serves (`container:port`); the API port serves none.
  const agentPorts = new Map<number, string>([[raw['agentApiPort'], '']]);
  for (const c of raw['containers'] as unknown[]) {
    if (!isRecord(c) || typeof c['name'] !== 'string' || !Array.isArray(c['intercepts'])) {
      throw new AgentConfigError(key, 'every container needs a name and a list of intercepts');
    }
    if (c['replaced'] !== undefined && c['replaced'] !== true) {
      throw new AgentConfigError(key, `container ${c['name']}: replaced is true or absent`);
    }
    for (const ic of c['intercepts'] as unknown[]) {
      if (!isRecord(ic) || !isPort(ic['containerPort']) || !isPort(ic['agentPort']) || !isPort(ic['servicePort'])) {
        throw new AgentConfigError(key, `container ${c['name']}: every intercept needs servicePort, containerPort and agentPort`);
      }
      const appPort = `${String(c['name'])}:${ic['containerPort']}`;
      const served = agentPorts.get(ic['agentPort']);
      if (served !== undefined && served !== appPort) {
        throw new AgentConfigError(key, `agent port ${ic['agentPort']} is used for two different app ports`);
      }
      agentPorts.set(ic['agentPort'], appPort);
    }
  }
  return raw as unknown as AgentConfig;
}

/** The ConfigMap value for a configuration: stable key order, so equal configs are equal text. */
export function serializeAgentConfig(config: AgentConfig): string {
  return JSON.stringify(config, null, 2);
}

/** How users name a Service port: `<service>:<port name>`, or `<service>:<port number>` for an unnamed one. */
export function servicePortLabel(ic: Pick<AgentIntercept, 'serviceName' | 'servicePortName' | 'servicePort'>): string {
  return `${ic.serviceName}:${ic.servicePortName !== '' ? ic.servicePortName : String(ic.servicePort)}`;
}

/** Every intercept of a configuration with the container that holds it. */
export function allIntercepts(config: AgentConfig): Array<{ container: AgentContainer; intercept: AgentIntercept }> {
  return config.containers.flatMap((container) => container.intercepts.map((intercept) => ({ container, intercept })));
}

/** The names of the containers a replace holds (see `AgentContainer.replaced`). */
export function replacedContainers(config: AgentConfig): string[] {
  return config.containers.filter((c) => c.replaced === true).map((c) => c.name);
}

/**
 * The configuration with exactly the containers `names` marked replaced (names it has no
 * container of are ignored). Never mutates `config`; the marker is left out, not set false, on
 * the others.
 */
export function withReplaced(config: AgentConfig, names: Iterable<string>): AgentConfig {
  const wanted = new Set(names);
  return {
    ...config,
    containers: config.containers.map((c) => {
      const { replaced: _, ...rest } = c;
      return wanted.has(c.name) ? { ...rest, replaced: true as const } : rest;
    }),
  };
}
