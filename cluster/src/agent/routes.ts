import { InterceptDisposition, type InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import { allIntercepts, type AgentConfig } from '../shared/agent-config.js';

/** One port the agent listens on, and where its traffic goes while nobody intercepts it. */
export interface ForwardRoute {
  readonly containerName: string;
  /** The app's port: passthrough connections go to `127.0.0.1:<containerPort>`. */
  readonly containerPort: number;
  /** Where the agent listens (all interfaces); also what an intercept's target names. */
  readonly agentPort: number;
  /** For logs: `<service>:<port name or number>`. */
  readonly label: string;
}

/** Every route of a configuration: one per intercept entry, across all containers. */
export function forwardRoutes(config: AgentConfig): ForwardRoute[] {
  return allIntercepts(config).map(({ container, intercept }) => ({
    containerName: container.name,
    containerPort: intercept.containerPort,
    agentPort: intercept.agentPort,
    label: `${intercept.serviceName}:${intercept.servicePortName !== '' ? intercept.servicePortName : String(intercept.servicePort)}`,
  }));
}

/**
 * The intercept, if any, that takes new connections on `route`.
 *
 * Only global intercepts qualify: one with headers is a personal intercept, which needs a
 * per-request HTTP router in the agent that does not exist yet, so its port keeps passing traffic
 * to the app. WAITING counts as well as ACTIVE: the manager decides dispositions (the agent has no
 * review call in v1) and answers AGENT_ERROR for one that must not be served. When several match
 * (the manager prevents that for global intercepts), the oldest wins, so every replica agrees.
 */
export function chooseIntercept(intercepts: readonly InterceptInfo[], route: ForwardRoute): InterceptInfo | undefined {
  let chosen: InterceptInfo | undefined;
  for (const ic of intercepts) {
    const target = ic.target;
    if (target === undefined || target.agentPort !== route.agentPort) continue;
    if (target.containerName !== '' && target.containerName !== route.containerName) continue;
    if (ic.disposition !== InterceptDisposition.ACTIVE && ic.disposition !== InterceptDisposition.WAITING) continue;
    if ((ic.spec?.headers.length ?? 0) > 0) continue;
    if (chosen === undefined || ic.createdAt < chosen.createdAt || (ic.createdAt === chosen.createdAt && ic.id < chosen.id)) {
      chosen = ic;
    }
  }
  return chosen;
}
