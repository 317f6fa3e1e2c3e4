import { DEFAULT_PORTS, ENV, managerServiceHost, type LogLevel } from '@telepresence-ts/core';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** The traffic-agent's configuration, from the environment the injector gives its container. */
export interface AgentConfig {
  /** The workload it serves: its key in the agents ConfigMap. */
  readonly agentName: string;
  /** The namespace of its pod. */
  readonly namespace: string;
  readonly podName: string | undefined;
  readonly podIp: string | undefined;
  /** The agent's own API port (for now, the health port). */
  readonly port: number;
  readonly managerHost: string;
  readonly managerPort: number;
  readonly logLevel: LogLevel;
}

/** Parses the traffic-agent's environment; throws a `config` TpError naming every bad variable. */
export function parseAgentEnv(env: Env): AgentConfig {
  const r = new EnvReader(env);
  return r.done('traffic-agent', {
    agentName: r.dnsLabel(ENV.agentName),
    namespace: r.dnsLabel(ENV.agentNamespace),
    podName: r.optional(ENV.podName),
    podIp: r.ip(ENV.podIp),
    port: r.port(ENV.agentPort, DEFAULT_PORTS.agent),
    managerHost: r.hostName(ENV.managerHost, managerServiceHost()),
    managerPort: r.port(ENV.managerPort, DEFAULT_PORTS.manager),
    logLevel: r.logLevel(ENV.logLevel),
  });
}
