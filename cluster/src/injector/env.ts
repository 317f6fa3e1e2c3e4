import {
  DEFAULT_AGENT_LOG_LEVEL,
  DEFAULT_MANAGER_NAMESPACE,
  DEFAULT_PORTS,
  ENV,
  ENV_AGENT_IMAGE,
  IMAGE_REPOSITORIES,
  INJECTOR_TLS_DIR,
  managerServiceHost,
  type LogLevel,
} from '@telepresence-ts/core/contracts';
import { VERSION } from '@telepresence-ts/core/version';
import type { BuildOptions } from '../manager/agent-config-builder.js';
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
  /**
   * What the agent configurations that pre-injection writes take from the traffic-manager's
   * settings. Read from the same variables, with the same defaults, as the manager's
   * (`parseManagerEnv`), so that both build the same entry for a workload: a prepare then finds
   * the entry as it would write it and restarts nothing. The manager's host is derived from the
   * namespace, which both share; the agents' log level and resources are `TP_AGENT_LOG_LEVEL`
   * and `TP_AGENT_RESOURCES`, which install and the chart set alike on both Deployments (the
   * program's own `TP_LOG_LEVEL` is not the agents').
   */
  readonly build: BuildOptions;
}

/** Parses the agent-injector's environment; throws a `config` TpError naming every bad variable. */
export function parseInjectorEnv(env: Env): InjectorConfig {
  const r = new EnvReader(env);
  const namespace = r.dnsLabel(ENV.managerNamespace, DEFAULT_MANAGER_NAMESPACE);
  const port = r.port(ENV.injectorPort, DEFAULT_PORTS.injector);
  const logLevel = r.logLevel(ENV.logLevel);
  const resources = r.resources(ENV.agentResources);
  return r.done('agent-injector', {
    namespace,
    port,
    tlsCertPath: r.optional(ENV.injectorTlsCert) ?? `${INJECTOR_TLS_DIR}/tls.crt`,
    tlsKeyPath: r.optional(ENV.injectorTlsKey) ?? `${INJECTOR_TLS_DIR}/tls.key`,
    logLevel,
    build: {
      agentImage: r.image(ENV_AGENT_IMAGE, `${IMAGE_REPOSITORIES.agent}:${VERSION}`),
      managerHost: managerServiceHost(namespace),
      managerPort: r.port(ENV.managerPort, DEFAULT_PORTS.manager),
      logLevel: r.logLevel(ENV.agentLogLevel, DEFAULT_AGENT_LOG_LEVEL),
      ...(resources === undefined ? {} : { resources }),
    },
  });
}
