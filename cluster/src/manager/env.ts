import { DEFAULT_MANAGER_NAMESPACE, DEFAULT_PORTS, ENV, type LogLevel } from '@telepresence-ts/core';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** The traffic-manager's configuration, from its environment. */
export interface ManagerConfig {
  /** The namespace it is installed in (downward API `metadata.namespace`). */
  readonly namespace: string;
  /** The gRPC port (for now, the health port). */
  readonly port: number;
  readonly logLevel: LogLevel;
}

/** Parses the traffic-manager's environment; throws a `config` TpError naming every bad variable. */
export function parseManagerEnv(env: Env): ManagerConfig {
  const r = new EnvReader(env);
  return r.done('traffic-manager', {
    namespace: r.dnsLabel(ENV.managerNamespace, DEFAULT_MANAGER_NAMESPACE),
    port: r.port(ENV.managerPort, DEFAULT_PORTS.manager),
    logLevel: r.logLevel(ENV.logLevel),
  });
}
