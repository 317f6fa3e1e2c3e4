import { VERSION } from '@telepresence-ts/core/version';
import { spawnPiped, type PipedProcess } from '../shared/command-runner.js';
import { startHealthServer } from '../shared/healthz.js';
import type { Logger } from '../shared/log.js';
import { DirectTunnels } from './direct.js';
import type { AgentSettings } from './env.js';
import { dialLocalApp, Forwarder, type ConnectionTap, type ForwarderOptions, type TappedConnection } from './forwarder.js';
import { chooseIntercept, forwardRoutes, personalIntercepts, wiretapsOn } from './routes.js';
import { CopyChannel, WiretapCopy, type WiretapOutcome } from './wiretap.js';
import type { ManagerClient } from '@telepresence-ts/proto/manager/v1';
import type { BackoffPolicy } from '@telepresence-ts/core/backoff';
import type { Duplex } from 'node:stream';
import { createManagerClient, ManagerSession } from './session.js';
import { TrafficReporter } from './traffic-reporter.js';
import { AgentTraffic } from './traffic-tap.js';
import { startSftpServer, type SftpServer } from './sftp.js';

/** A running traffic-agent. */
export interface RunningAgent {
  readonly forwarder: Forwarder;
  readonly session: ManagerSession;
  /** Where clients park direct tunnels (manager.proto, "Direct tunnels"). */
  readonly direct: DirectTunnels;
  /** The port the API (/healthz) is bound to. */
  readonly apiPort: number;
  stop(): Promise<void>;
}

/** Knobs for tests; the program uses the defaults. */
export interface AgentOptions {
  readonly backoff?: BackoffPolicy;
  readonly forwarder?: ForwarderOptions;
  /** Address of the API server; every interface by default (the kubelet probes the pod IP). */
  readonly apiHost?: string;
  /** Address of the direct-tunnel listener; the pod's loopback by default. */
  readonly directHost?: string;
  /** Starts the sftp-server of each volume connection; the real one by default. */
  readonly spawn?: (command: string, args: readonly string[]) => PipedProcess;
  /** Told of each wiretapped connection once it and its copy are done. */
  readonly onWiretap?: (outcome: WiretapOutcome) => void;
}

/**
 * The SFTP server for the app containers' volumes, when any container has some. Remote volumes
 * are an extra: when it cannot start, the agent still forwards traffic and reports no port.
 */
async function startVolumeServer(settings: AgentSettings, log: Logger, spawn: (command: string, args: readonly string[]) => PipedProcess): Promise<SftpServer | undefined> {
  if (!settings.appContainers.some((c) => c.mounts.length > 0)) return undefined;
  try {
    const server = await startSftpServer({ spawn, log });
    log.info('serving the app volumes over sftp on the loopback', { port: server.port });
    return server;
  } catch (err: unknown) {
    log.warn('cannot serve the app volumes', { error: (err as Error).message });
    return undefined;
  }
}

/**
 * Starts the traffic-agent: the forwarder's listeners first, then the API, whose /healthz
 * answers as soon as the listeners are up and whatever the manager does (so the pod stays Ready
 * and keeps serving the app while the manager is away), then the manager session in the background.
 */
export async function startAgent(settings: AgentSettings, log: Logger, options: AgentOptions = {}): Promise<RunningAgent> {
  const { config } = settings;
  const sftp = await startVolumeServer(settings, log, options.spawn ?? spawnPiped);
  let direct: DirectTunnels;
  try {
    direct = await DirectTunnels.start(log, { host: options.directHost });
  } catch (err: unknown) {
    await sftp?.close();
    throw err;
  }
  log.info('accepting direct tunnels on the loopback', { port: direct.port });
  const newClient = (): ManagerClient => createManagerClient(`${settings.managerHost}:${settings.managerPort}`, options.backoff);
  const client = newClient();
  const session = new ManagerSession({
    client,
    newClient,
    agent: {
      name: config.agentName,
      namespace: settings.namespace,
      podName: settings.podName,
      podIp: settings.podIp,
      version: VERSION,
      kind: config.workloadKind,
      containers: settings.appContainers.map((c) => ({ name: c.name, env: c.env, mountRoot: c.mountRoot, mounts: c.mounts })),
      sftpPort: sftp?.port ?? 0,
      tunnelPort: direct.port,
    },
    log,
    backoff: options.backoff,
  });
  const openTunnel = (interceptId: string, source: string, containerPort: number): Duplex | undefined => {
    // A stream the owner parked here skips the manager; without one, the manager relays.
    const owner = session.intercepts.find((ic) => ic.id === interceptId)?.clientSessionId;
    const parked = owner === undefined ? undefined : direct.take(owner, { interceptId, source, containerPort }, () => session.openTunnel(interceptId, source, containerPort));
    if (parked !== undefined) {
      log.debug('connection handed to a direct tunnel', { interceptId, source });
      return parked;
    }
    return session.openTunnel(interceptId, source, containerPort);
  };
  // The live traffic view: what engagements take part in goes to the manager, in batches.
  const reporter = new TrafficReporter({ client: () => session.client, sessionId: () => session.sessionId, log });
  const traffic = new AgentTraffic(() => session.intercepts, settings.podName, (event) => reporter.add(event));
  const wiretapDone = (outcome: WiretapOutcome): void => {
    traffic.wiretapDone(outcome);
    const { interceptId, source, copiedBytes, droppedBytes, problem } = outcome;
    if (droppedBytes > 0) log.info('wiretap copy incomplete', { interceptId, source, copiedBytes, droppedBytes, problem });
    else log.debug('wiretap copy done', { interceptId, source, copiedBytes });
    options.onWiretap?.(outcome);
  };
  // One copy stream per wiretap, for all its connections; dropped once the wiretap is gone.
  const channels = new Map<string, CopyChannel>();
  const channelOf = (id: string, containerPort: number): CopyChannel => {
    let channel = channels.get(id);
    if (channel === undefined) {
      for (const [known, old] of channels) {
        if (!session.intercepts.some((ic) => ic.id === known)) {
          old.close();
          channels.delete(known);
        }
      }
      channel = new CopyChannel(() => openTunnel(id, 'copies', containerPort));
      channels.set(id, channel);
    }
    return channel;
  };
  const tapsFor = (connection: TappedConnection): ConnectionTap[] =>
    wiretapsOn(session.intercepts, connection.route).map(
      (wiretap) => new WiretapCopy(wiretap.id, connection, { channel: channelOf(wiretap.id, connection.route.containerPort), done: wiretapDone }),
    );
  let forwarder: Forwarder | undefined;
  try {
    forwarder = await Forwarder.start(
      forwardRoutes(config),
      {
        interceptFor: (route) => chooseIntercept(session.intercepts, route)?.id,
        personalFor: (route) => personalIntercepts(session.intercepts, route),
        openTunnel,
        tapsFor: (connection) => [...tapsFor(connection), ...traffic.tapsFor(connection)],
        dialApp: dialLocalApp,
        isRoutingProbe: (address) => session.managerPodIps.includes(address),
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
      direct,
      apiPort: health.port,
      async stop() {
        reporter.stop();
        await session.stop();
        await running.close();
        await direct.close();
        await health.close();
        await sftp?.close();
        session.client.close();
      },
    };
  } catch (err: unknown) {
    await forwarder?.close();
    await direct.close();
    await sftp?.close();
    client.close();
    throw err;
  }
}
