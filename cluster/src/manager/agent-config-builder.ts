/**
 * Pure: the agent configuration of a workload, from the workload and its namespace's Services, and
 * the resolution of an intercept spec to one of its connections (ADR 0002, prepare steps 2-3).
 */
import { DEFAULT_PORTS, type LogLevel } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import type { InterceptSpec, InterceptTarget } from '@telepresence-ts/proto/manager/v1';
import {
  AGENT_CONFIG_VERSION,
  allIntercepts,
  servicePortLabel,
  type AgentConfig,
  type AgentContainer,
  type AgentIntercept,
} from '@telepresence-ts/core/agent-config';
import { isReplace, replaceLocalPort, takesContainer } from '@telepresence-ts/core/engagement';
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { KubeService, KubeWorkload } from './kube.js';

/** What the configuration takes from the manager rather than from the workload. */
export interface BuildOptions {
  readonly agentImage: string;
  readonly managerHost: string;
  readonly managerPort: number;
  /** The agents' log level (`TP_AGENT_LOG_LEVEL`), not the building program's own. */
  readonly logLevel: LogLevel;
  /** The agent container's resources (`TP_AGENT_RESOURCES`), canonical; absent: the injector's default. */
  readonly resources?: V1ResourceRequirements;
}

/** Where the agent mounts a container's volumes (Telepresence's `/tel_app_mounts/<container>`). */
export function mountPointFor(containerName: string): string {
  return `/tel_app_mounts/${containerName}`;
}

/** `deployment/web`: how the CLI names a workload. */
export function workloadRef(w: Pick<KubeWorkload, 'kind' | 'name'>): string {
  return `${w.kind.toLowerCase()}/${w.name}`;
}

/** True when every key of a non-empty selector has the same value among the labels. */
export function selectorMatches(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** The Services (of the workload's namespace) whose selector matches its pod template, by name. */
export function servicesOf(workload: KubeWorkload, services: readonly KubeService[]): KubeService[] {
  const labels = workload.object.spec?.template?.metadata?.labels ?? {};
  return services
    .filter((s) => s.metadata?.namespace === undefined || s.metadata.namespace === workload.namespace)
    .filter((s) => selectorMatches(s.spec?.selector, labels))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/**
 * Builds the workload's configuration from every connection between the ports of its Services and
 * its containers' ports:
 * - `targetPort` by name: the container port with that name (no such port: no connection);
 * - `targetPort` by number, or absent (= the Service port): the container declaring that
 *   `containerPort`, else the first container (a port need not be declared to be served).
 * Agent ports are handed out from `DEFAULT_PORTS.agent + 1` in Service-name then port order, so the
 * same inputs always give the same configuration (and the same hash: no needless rollouts).
 *
 * `no-service` when no Service selects the pods or none of their TCP ports reaches a container.
 */
export function buildAgentConfig(workload: KubeWorkload, services: readonly KubeService[], options: BuildOptions): AgentConfig {
  const containers = workload.object.spec?.template?.spec?.containers ?? [];
  const matching = servicesOf(workload, services);
  const ref = workloadRef(workload);
  if (matching.length === 0) {
    const labels = Object.entries(workload.object.spec?.template?.metadata?.labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    throw new TpError('user', 'no-service', `${ref} has no Service selecting its pods (labels ${labels || 'none'}), so it has nothing to intercept`, {
      hint: `expose it first, e.g. kubectl expose ${ref} -n ${workload.namespace} --port 80 --target-port <container port>`,
    });
  }
  const byContainer = new Map<string, AgentIntercept[]>();
  let nextAgentPort = DEFAULT_PORTS.agent + 1;
  // Service ports that lead to the same app port share its agent port: once in the pod, their
  // connections cannot be told apart (an iptables redirect or a port name sends them all to one
  // place), so one listener serves them all.
  const agentPortOf = new Map<string, number>();
  for (const svc of matching) {
    for (const port of svc.spec?.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const target = port.targetPort ?? port.port;
      let containerName: string | undefined;
      let containerPort: number | undefined;
      let containerPortName = '';
      // A name: only a port of that name serves it. (The API server stores numbers as numbers.)
      const numeric = typeof target === 'number' || /^\d+$/.test(target);
      if (!numeric) {
        for (const c of containers) {
          const p = (c.ports ?? []).find((cp) => cp.name === target);
          if (p !== undefined) {
            containerName = c.name;
            containerPort = p.containerPort;
            containerPortName = target;
            break;
          }
        }
      } else {
        const n = Number(target);
        const declaring = containers.find((c) => (c.ports ?? []).some((cp) => cp.containerPort === n && (cp.protocol ?? 'TCP') === 'TCP'));
        const c = declaring ?? containers[0];
        if (c !== undefined) {
          containerName = c.name;
          containerPort = n;
          containerPortName = (c.ports ?? []).find((cp) => cp.containerPort === n)?.name ?? '';
        }
      }
      if (containerName === undefined || containerPort === undefined) continue;
      const appPort = `${containerName}:${containerPort}`;
      const agentPort = agentPortOf.get(appPort) ?? nextAgentPort++;
      agentPortOf.set(appPort, agentPort);
      const list = byContainer.get(containerName) ?? [];
      list.push({
        serviceName: svc.metadata?.name ?? '',
        serviceUid: svc.metadata?.uid ?? '',
        servicePortName: port.name ?? '',
        servicePort: port.port,
        protocol: 'TCP',
        targetPortNumeric: numeric,
        containerPortName,
        containerPort,
        agentPort,
      });
      byContainer.set(containerName, list);
    }
  }
  if (byContainer.size === 0) {
    const names = matching.map((s) => s.metadata?.name ?? '').join(', ');
    throw new TpError('user', 'no-service', `no TCP port of the Services of ${ref} (${names}) leads to a port of its containers`, {
      hint: "check the Services' targetPort against the containers' ports",
    });
  }
  const agentContainers: AgentContainer[] = containers.flatMap((c) => {
    const intercepts = byContainer.get(c.name);
    return intercepts === undefined ? [] : [{ name: c.name, intercepts, mountPoint: mountPointFor(c.name) }];
  });
  return {
    version: AGENT_CONFIG_VERSION,
    agentName: workload.name,
    namespace: workload.namespace,
    workloadName: workload.name,
    workloadKind: workload.kind,
    agentImage: options.agentImage,
    managerHost: options.managerHost,
    managerPort: options.managerPort,
    agentApiPort: DEFAULT_PORTS.agent,
    logLevel: options.logLevel,
    // Left out when unset, so that an entry is what it was before agents had settable resources.
    ...(options.resources === undefined ? {} : { resources: options.resources }),
    containers: agentContainers,
  };
}

/** One connection of a configuration: the container that serves it and the intercept. */
export interface ResolvedTarget {
  readonly container: AgentContainer;
  readonly intercept: AgentIntercept;
}

/** How the CLI names a service port in `--port <local>:<port>`: its name, else its number. */
export function portId(ic: AgentIntercept): string {
  return ic.servicePortName === '' ? String(ic.servicePort) : ic.servicePortName;
}

function describe(c: ResolvedTarget, withService: boolean): string {
  const svc = withService ? `service ${c.intercept.serviceName}, ` : '';
  return `${svc}${c.intercept.servicePort} -> container ${c.container.name}:${c.intercept.containerPort}`;
}

function distinct<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/**
 * Picks the one connection the spec means. Filters by `service_name`, `service_port` (name or
 * number) and `container_name`, each optional; when more than one connection remains the error
 * lists every choice in the syntax the CLI accepts.
 */
export function resolveTarget(config: AgentConfig, spec: Pick<InterceptSpec, 'serviceName' | 'servicePort' | 'containerName'> & { readonly mode?: string }): ResolvedTarget {
  const ref = `${config.workloadKind.toLowerCase()}/${config.workloadName}`;
  let candidates: ResolvedTarget[] = allIntercepts(config);
  if (candidates.length === 0) {
    throw new TpError('user', 'no-service', `${ref} has no interceptable port`, { hint: `expose it with a Service first (kubectl expose ${ref})` });
  }
  // An ingest and a replace take a container, not a port: its first port only names it.
  if (takesContainer(spec)) return resolveContainer(ref, candidates, spec.containerName);
  if (spec.serviceName !== '') {
    const services = distinct(candidates.map((c) => c.intercept.serviceName)).sort();
    candidates = candidates.filter((c) => c.intercept.serviceName === spec.serviceName);
    if (candidates.length === 0) {
      throw new TpError('user', 'unknown-service', `${ref} is not selected by a Service named "${spec.serviceName}"; its Services: ${services.join(', ')}`, {
        hint: `choose one with --service <name>, e.g. --service ${services[0] ?? ''}`,
      });
    }
  }
  if (spec.servicePort !== '') {
    const before = candidates;
    candidates = candidates.filter((c) => c.intercept.servicePortName === spec.servicePort || String(c.intercept.servicePort) === spec.servicePort);
    if (candidates.length === 0) {
      const where = spec.serviceName === '' ? `the Services of ${ref} have` : `service ${spec.serviceName} of ${ref} has`;
      throw new TpError(
        'user',
        'unknown-port',
        `${where} no port "${spec.servicePort}" (a Service port's name or number); choose one with --port <local>:<port>: ${before
          .map((c) => `${portId(c.intercept)} (${describe(c, true)})`)
          .join(', ')}`,
        { hint: `e.g. --port 8080:${portId(before[0]!.intercept)}` },
      );
    }
  }
  if (spec.containerName !== '') {
    const before = candidates;
    candidates = candidates.filter((c) => c.container.name === spec.containerName);
    if (candidates.length === 0) {
      const names = distinct(before.map((c) => c.container.name));
      throw new TpError('user', 'unknown-container', `no interceptable port of ${ref} is served by a container "${spec.containerName}"; choose one with --container <name>: ${names.join(', ')}`, {
        hint: `e.g. --container ${names[0] ?? ''}`,
      });
    }
  }
  const only = candidates[0];
  if (candidates.length === 1 && only !== undefined) return only;

  const ports = distinct(candidates.map((c) => portId(c.intercept)));
  if (ports.length > 1) {
    throw new TpError(
      'user',
      'ambiguous-port',
      `${ref} has ${candidates.length} interceptable ports; choose one with --port <local>:<port>: ${candidates
        .map((c) => `${portId(c.intercept)} (${describe(c, true)})`)
        .join(', ')}`,
      { hint: `e.g. --port 8080:${ports[0] ?? ''}` },
    );
  }
  const services = distinct(candidates.map((c) => c.intercept.serviceName));
  if (services.length > 1) {
    throw new TpError(
      'user',
      'ambiguous-service',
      `${ref} has ${services.length} Services with port ${ports[0] ?? ''}; choose one with --service <name>: ${candidates
        .map((c) => `${c.intercept.serviceName} (${describe(c, false)})`)
        .join(', ')}`,
      { hint: `e.g. --service ${services[0] ?? ''}` },
    );
  }
  const containers = distinct(candidates.map((c) => c.container.name));
  throw new TpError(
    'user',
    'ambiguous-container',
    `port ${ports[0] ?? ''} of ${ref} is served by ${containers.length} containers; choose one with --container <name>: ${containers.join(', ')}`,
    { hint: `e.g. --container ${containers[0] ?? ''}` },
  );
}

/** The wire form of a resolved connection, with the other Service ports that share its agent port. */
export function toInterceptTarget(t: ResolvedTarget, config: AgentConfig): InterceptTarget {
  const sharedWith = allIntercepts(config)
    .filter(({ container, intercept }) => container.name === t.container.name && intercept.agentPort === t.intercept.agentPort && intercept !== t.intercept)
    .map(({ intercept }) => servicePortLabel(intercept));
  return {
    serviceName: t.intercept.serviceName,
    serviceUid: t.intercept.serviceUid,
    servicePortName: t.intercept.servicePortName,
    servicePort: t.intercept.servicePort,
    protocol: t.intercept.protocol,
    containerName: t.container.name,
    containerPort: t.intercept.containerPort,
    agentPort: t.intercept.agentPort,
    sharedWith,
  };
}

/** The container an ingest takes: the one named, or the only one with an agent port. */
function resolveContainer(ref: string, candidates: readonly ResolvedTarget[], containerName: string): ResolvedTarget {
  const names = distinct(candidates.map((c) => c.container.name));
  const chosen = containerName === '' ? (names.length === 1 ? names[0] : undefined) : names.find((n) => n === containerName);
  const found = candidates.find((c) => c.container.name === chosen);
  if (found !== undefined) return found;
  if (containerName !== '') {
    throw new TpError('user', 'unknown-container', `${ref} has no container "${containerName}" behind a Service; choose one with --container <name>: ${names.join(', ')}`, {
      hint: `e.g. --container ${names[0] ?? ''}`,
    });
  }
  throw new TpError('user', 'ambiguous-container', `${ref} has ${names.length} containers behind its Services; choose one with --container <name>: ${names.join(', ')}`, {
    hint: `e.g. --container ${names[0] ?? ''}`,
  });
}

/**
 * Every port of a replaced container that the agent serves (those its Services lead to), each with
 * the workstation port it goes to: the one `spec.ports` names, else the same number. Sorted by
 * container port. `unknown-container-port` when `spec.ports` names a port the container is not
 * reached on, listing those it is; `bad-port` when two container ports would go to one local port.
 */
export function replacePorts(spec: Pick<InterceptSpec, 'ports'>, config: AgentConfig, t: ResolvedTarget): Array<{ containerPort: number; localPort: number }> {
  const served = distinct(t.container.intercepts.map((ic) => ic.containerPort)).sort((a, b) => a - b);
  const unknown = spec.ports.filter((p) => !served.includes(p.containerPort)).map((p) => p.containerPort);
  if (unknown.length > 0) {
    const ref = `${config.workloadKind.toLowerCase()}/${config.workloadName}`;
    throw new TpError(
      'user',
      'unknown-container-port',
      `container ${t.container.name} of ${ref} is not reached on port ${unknown.join(', ')} by any of its Services; its ports: ${served.join(', ')}`,
      { hint: `map one of them with --port <local port>:<container port>, e.g. --port 8080:${served[0] ?? ''}; a port not mapped keeps its number` },
    );
  }
  const mapped = served.map((containerPort) => ({ containerPort, localPort: replaceLocalPort(spec, containerPort) }));
  // `--port 8080:9090` beside a port 8080 that keeps its number: one local port for two.
  for (const p of mapped) {
    const other = mapped.find((q) => q !== p && q.localPort === p.localPort);
    if (other !== undefined) {
      throw new TpError(
        'user',
        'bad-port',
        `container ports ${Math.min(p.containerPort, other.containerPort)} and ${Math.max(p.containerPort, other.containerPort)} of ${t.container.name} would both go to local port ${p.localPort}`,
        { hint: `move the one that keeps its number too, e.g. --port ${p.localPort + 10000}:${p.localPort}` },
      );
    }
  }
  return mapped;
}

/** The name an engagement gets when the spec has none: ingests and replaces have their own. */
function defaultName(spec: InterceptSpec, config: AgentConfig): string {
  const base = `${config.workloadName}-${config.namespace}`;
  return spec.mode === 'ingest' || spec.mode === 'replace' ? `${base}-${spec.mode}` : base;
}

/**
 * The spec with every optional field filled in from the resolved connection; a replace's `ports`
 * list every port of the container (see `replacePorts`).
 */
export function resolvedSpec(spec: InterceptSpec, config: AgentConfig, t: ResolvedTarget): InterceptSpec {
  return {
    ...spec,
    name: spec.name === '' ? defaultName(spec, config) : spec.name,
    namespace: config.namespace,
    workloadKind: config.workloadKind,
    serviceName: t.intercept.serviceName,
    servicePort: portId(t.intercept),
    containerName: t.container.name,
    ...(isReplace(spec) ? { ports: replacePorts(spec, config, t) } : {}),
  };
}
