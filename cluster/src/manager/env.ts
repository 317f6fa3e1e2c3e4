import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { DEFAULT_AGENT_LOG_LEVEL, DEFAULT_MANAGER_NAMESPACE, DEFAULT_PORTS, ENV, ENV_AGENT_IMAGE, ENV_PREPARE_TIMEOUT_SECONDS, IMAGE_REPOSITORIES, managerServiceHost, type LogLevel } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { VERSION } from '@telepresence-ts/core/version';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** Default prepare timeout (ADR 0002: bounded): a rollout with an image pull fits in two minutes. */
export const DEFAULT_PREPARE_TIMEOUT_SECONDS = 120;

/** The traffic-manager's configuration, from its environment. */
export interface ManagerConfig {
  /** The namespace it is installed in (downward API `metadata.namespace`). */
  readonly namespace: string;
  /** The gRPC port, which also answers `GET /healthz`. */
  readonly port: number;
  readonly logLevel: LogLevel;
  /** The traffic-agent image written into every agent configuration. */
  readonly agentImage: string;
  /** The agents' log level (`TP_AGENT_LOG_LEVEL`), written into every agent configuration; not `logLevel`. */
  readonly agentLogLevel: LogLevel;
  /** The agent container's resources (`TP_AGENT_RESOURCES`), likewise; undefined: the injector's default. */
  readonly agentResources: V1ResourceRequirements | undefined;
  /** How agents reach the manager: `traffic-manager.<namespace>` and `port`. */
  readonly managerHost: string;
  readonly prepareTimeoutMs: number;
  /**
   * The addresses of the manager's own pod (downward API `status.podIPs`), which agents take as
   * the source of routing probes; empty when not given, and prepare then probes nothing.
   */
  readonly podIps: readonly string[];
  /**
   * Admin overrides of the subnets that GetClusterInfo discovers (`TP_POD_CIDRS`,
   * `TP_SERVICE_CIDRS`), canonical CIDRs; empty when unset, and the manager discovers them.
   */
  readonly podCidrs: readonly string[];
  readonly serviceCidrs: readonly string[];
}

/** Parses the traffic-manager's environment; throws a `config` TpError naming every bad variable. */
export function parseManagerEnv(env: Env): ManagerConfig {
  const r = new EnvReader(env);
  const namespace = r.dnsLabel(ENV.managerNamespace, DEFAULT_MANAGER_NAMESPACE);
  const port = r.port(ENV.managerPort, DEFAULT_PORTS.manager);
  const logLevel = r.logLevel(ENV.logLevel);
  const podIps = r.ips(ENV.managerPodIps);
  const podCidrs = r.cidrs(ENV.podCidrs);
  const serviceCidrs = r.cidrs(ENV.serviceCidrs);
  const agentImage = r.image(ENV_AGENT_IMAGE, `${IMAGE_REPOSITORIES.agent}:${VERSION}`);
  const agentLogLevel = r.logLevel(ENV.agentLogLevel, DEFAULT_AGENT_LOG_LEVEL);
  const agentResources = r.resources(ENV.agentResources);
  // EnvReader has no reader for durations; collect this one's problem into the same message.
  const extra: string[] = [];
  const rawTimeout = env[ENV_PREPARE_TIMEOUT_SECONDS]?.trim() ?? '';
  let timeoutSeconds = DEFAULT_PREPARE_TIMEOUT_SECONDS;
  if (rawTimeout !== '') {
    timeoutSeconds = /^\d+$/.test(rawTimeout) ? Number(rawTimeout) : NaN;
    if (!(timeoutSeconds >= 1 && timeoutSeconds <= 3600)) {
      extra.push(`${ENV_PREPARE_TIMEOUT_SECONDS}=${JSON.stringify(rawTimeout)} is not a number of seconds (1-3600)`);
    }
  }
  const config: ManagerConfig = {
    namespace,
    port,
    logLevel,
    agentImage,
    agentLogLevel,
    agentResources,
    managerHost: managerServiceHost(namespace),
    prepareTimeoutMs: timeoutSeconds * 1000,
    podIps,
    podCidrs,
    serviceCidrs,
  };
  try {
    r.done('traffic-manager', config);
  } catch (err: unknown) {
    if (extra.length === 0 || !(err instanceof TpError)) throw err;
    throw new TpError('config', 'bad-environment', `${err.message}; ${extra.join('; ')}`, { hint: err.hint });
  }
  if (extra.length > 0) {
    throw new TpError('config', 'bad-environment', `invalid environment: ${extra.join('; ')}`, { hint: 'fix the environment of the traffic-manager container' });
  }
  return config;
}
