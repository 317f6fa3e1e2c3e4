import { DEFAULT_MANAGER_NAMESPACE, DEFAULT_PORTS, ENV, type LogLevel } from '@telepresence-ts/core';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** The agent-injector's configuration, from its environment. */
export interface InjectorConfig {
  /** The manager namespace it is installed in (downward API `metadata.namespace`). */
  readonly namespace: string;
  /** The webhook's port (for now, the health port). */
  readonly port: number;
  readonly logLevel: LogLevel;
}

/** Parses the agent-injector's environment; throws a `config` TpError naming every bad variable. */
export function parseInjectorEnv(env: Env): InjectorConfig {
  const r = new EnvReader(env);
  return r.done('agent-injector', {
    namespace: r.dnsLabel(ENV.managerNamespace, DEFAULT_MANAGER_NAMESPACE),
    port: r.port(ENV.injectorPort, DEFAULT_PORTS.injector),
    logLevel: r.logLevel(ENV.logLevel),
  });
}
