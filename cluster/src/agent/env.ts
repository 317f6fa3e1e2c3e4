import { ENV, LOG_LEVELS, type LogLevel } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { AgentConfigError, parseAgentConfig, type AgentConfig } from '@telepresence-ts/core/agent-config';
import { appEnvironment, appEnvPrefix } from '../shared/app-env.js';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** What the traffic-agent reads from its environment (set by the injector and the downward API). */
export interface AgentEnv {
  /** The mounted agent configuration (the workload's `telepresence-agents` entry). */
  readonly configPath: string;
  /** The workload's name: the entry's key, which the file's `agentName` must equal. */
  readonly agentName: string | undefined;
  readonly namespace: string | undefined;
  readonly podName: string | undefined;
  readonly podIp: string | undefined;
  /** Overrides of the configuration's values, for running the agent by hand. */
  readonly apiPort: number | undefined;
  readonly managerHost: string | undefined;
  readonly managerPort: number | undefined;
  readonly logLevel: LogLevel | undefined;
}

/** Parses the traffic-agent's environment; throws a `config` TpError naming every bad variable. */
export function parseAgentEnv(env: Env): AgentEnv {
  const r = new EnvReader(env);
  const given = (name: string): boolean => r.optional(name) !== undefined;
  return r.done('traffic-agent', {
    configPath: r.required(ENV.agentConfigPath),
    agentName: given(ENV.agentName) ? r.dnsLabel(ENV.agentName) : undefined,
    namespace: given(ENV.agentNamespace) ? r.dnsLabel(ENV.agentNamespace) : undefined,
    podName: r.optional(ENV.podName),
    podIp: r.ip(ENV.podIp),
    apiPort: given(ENV.agentPort) ? r.port(ENV.agentPort, 0) : undefined,
    managerHost: given(ENV.managerHost) ? r.hostName(ENV.managerHost, '') : undefined,
    managerPort: given(ENV.managerPort) ? r.port(ENV.managerPort, 0) : undefined,
    logLevel: given(ENV.logLevel) ? r.logLevel(ENV.logLevel) : undefined,
  });
}

/** Everything the agent runs with: its configuration file, completed by its environment. */
export interface AgentSettings {
  readonly config: AgentConfig;
  readonly namespace: string;
  readonly podName: string;
  /** Empty when the downward API did not provide it. */
  readonly podIp: string;
  readonly apiPort: number;
  readonly managerHost: string;
  readonly managerPort: number;
  readonly logLevel: LogLevel;
  /** Each served app container's environment and volume mounts (ADR 0003), in config order. */
  readonly appContainers: readonly AppContainer[];
}

/** An app container as the agent reports it to the manager. */
export interface AppContainer {
  readonly name: string;
  readonly env: Record<string, string>;
  /** Where the agent container sees the container's volumes: `<mountRoot><original path>`. */
  readonly mountRoot: string;
  readonly mounts: string[];
}

/**
 * Reads and checks the configuration file named by the environment, and merges the two: the
 * environment wins where both say something (the pod's namespace, a hand-set port or log level).
 * Throws a `config` TpError when either is bad.
 */
export function loadAgentSettings(env: Env, readText: (path: string) => string, hostName: () => string): AgentSettings {
  const e = parseAgentEnv(env);
  let text: string;
  try {
    text = readText(e.configPath);
  } catch (err: unknown) {
    throw new TpError('config', 'agent-config-unreadable', `cannot read the agent configuration ${e.configPath}: ${(err as Error).message}`, {
      hint: `check that ${ENV.agentConfigPath} names the file mounted from the telepresence-agents ConfigMap`,
      cause: err,
    });
  }
  let config: AgentConfig;
  try {
    config = parseAgentConfig(e.agentName ?? nameInFile(text), text);
  } catch (err: unknown) {
    if (!(err instanceof AgentConfigError)) throw err;
    throw new TpError('config', 'bad-agent-config', err.message, {
      hint: 'remove the workload\'s entry from the telepresence-agents ConfigMap and intercept again, so the traffic-manager writes it anew',
      cause: err,
    });
  }
  return {
    config,
    namespace: e.namespace ?? config.namespace,
    // The kubelet sets a pod's host name to the pod's name.
    podName: e.podName ?? hostName(),
    podIp: e.podIp ?? '',
    apiPort: e.apiPort ?? config.agentApiPort,
    managerHost: e.managerHost ?? config.managerHost,
    managerPort: e.managerPort ?? config.managerPort,
    // The file's level is not checked by parseAgentConfig; an unknown one must not silence the logs.
    logLevel: e.logLevel ?? (LOG_LEVELS.includes(config.logLevel) ? config.logLevel : 'info'),
    appContainers: config.containers.map((c, index) => ({ name: c.name, mountRoot: c.mountPoint, ...appEnvironment(env, appEnvPrefix(index)) })),
  };
}

/** Without TP_AGENT_NAME, the file names itself (parseAgentConfig then checks the rest). */
function nameInFile(text: string): string {
  try {
    const raw = JSON.parse(text) as { agentName?: unknown };
    return typeof raw.agentName === 'string' ? raw.agentName : '';
  } catch {
    return '';
  }
}
