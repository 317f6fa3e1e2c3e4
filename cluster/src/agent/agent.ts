import { VERSION } from '@telepresence-ts/core';
import { startHealthServer } from '../shared/healthz.js';
import type { Logger } from '../shared/log.js';
import type { AgentSettings } from './env.js';
import { dialLocalApp, Forwarder, type ForwarderOptions } from './forwarder.js';
import { chooseIntercept, forwardRoutes } from './routes.js';
import { createManagerClient, ManagerSession, type Backoff } from './session.js';

/** A running traffic-agent. */
export interface RunningAgent {
  readonly forwarder: Forwarder;
  readonly session: ManagerSession;
  /** The port the API (/healthz) is bound to. */
  readonly apiPort: number;
  stop(): Promise<void>;
}

/** Knobs for tests; the program uses the defaults. */
export interface AgentOptions {
  readonly backoff?: Backoff;
  readonly forwarder?: ForwarderOptions;
  /** Address of the API server; every interface by default (the kubelet probes the pod IP). */
  readonly apiHost?: string;
}

/**
 * Starts the traffic-agent: the forwarder's listeners first, then the API, whose /healthz
 * answers as soon as the listeners are up and whatever the manager does (so the pod stays Ready
 * and keeps serving the app while the manager is away), then the manager session in the background.
 */
export async function startAgent(settings: AgentSettings, log: Logger, options: AgentOptions = {}): Promise<RunningAgent> {
  const { config } = settings;
  const client = createManagerClient(`${settings.managerHost}:${settings.managerPort}`, options.backoff);
  const session = new ManagerSession({
    client,
    agent: {
      name: config.agentName,
      namespace: settings.namespace,
      podName: settings.podName,
      podIp: settings.podIp,
      version: VERSION,
      kind: config.workloadKind,
    },
    log,
    backoff: options.backoff,
  });
  let forwarder: Forwarder | undefined;
  try {
    forwarder = await Forwarder.start(
      forwardRoutes(config),
      {
        interceptFor: (route) => chooseIntercept(session.intercepts, route)?.id,
        openTunnel: (interceptId, source) => session.openTunnel(interceptId, source),
        dialApp: dialLocalApp,
      },
      log,
      options.forwarder,
    );
    const health = await startHealthServer(settings.apiPort, options.apiHost);
    log.info('serving /healthz', { port: health.port });
    session.start();
    const running = forwarder;
    return {
      forwarder: running,
      session,
      apiPort: health.port,
      async stop() {
        await session.stop();
        await running.close();
        await health.close();
        client.close();
      },
    };
  } catch (err: unknown) {
    await forwarder?.close();
    client.close();
    throw err;
  }
}
