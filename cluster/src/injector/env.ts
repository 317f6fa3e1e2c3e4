import { DEFAULT_MANAGER_NAMESPACE, DEFAULT_PORTS, ENV, INJECTOR_TLS_DIR, type LogLevel } from '@telepresence-ts/core/contracts';
import { EnvReader, type Env } from '../shared/env-reader.js';

/** The agent-injector's configuration, from its environment. */
export interface InjectorConfig {
  /** The manager namespace it is installed in (downward API `metadata.namespace`); never injected. */
  readonly namespace: string;
  /** The HTTPS port of the webhook (and its /healthz). */
  readonly port: number;
  /**
   * PEM files of the serving certificate and its key; by default the keys `tls.crt` and `tls.key`
   * of the Secret `RESOURCE_NAMES.injectorTlsSecret` mounted at `INJECTOR_TLS_DIR`.
   */
  readonly tlsCertPath: string;
  readonly tlsKeyPath: string;
  readonly logLevel: LogLevel;
}

/** Parses the agent-injector's environment; throws a `config` TpError naming every bad variable. */
export function parseInjectorEnv(env: Env): InjectorConfig {
  const r = new EnvReader(env);
  return r.done('agent-injector', {
    namespace: r.dnsLabel(ENV.managerNamespace, DEFAULT_MANAGER_NAMESPACE),
    port: r.port(ENV.injectorPort, DEFAULT_PORTS.injector),
    tlsCertPath: r.optional(ENV.injectorTlsCert) ?? `${INJECTOR_TLS_DIR}/tls.crt`,
    tlsKeyPath: r.optional(ENV.injectorTlsKey) ?? `${INJECTOR_TLS_DIR}/tls.key`,
    logLevel: r.logLevel(ENV.logLevel),
  });
}
