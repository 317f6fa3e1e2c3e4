/**
 * The production I/O of outbound access for one session (docs/adr/0006-outbound-access.md): the
 * manager's ClusterInfo and LookupDNS over the session's channel, the kernel's routes, the flow
 * server on a socket beside the daemon's own, the DNS resolver, and the network daemon.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TpError } from '../errors.js';
import { deadlineIn, unary } from '../grpc-call.js';
import { connectNetworkDaemon, type NetworkApi } from '../network/client.js';
import { startDnsServer } from '../outbound/dns-server.js';
import { startFlowServer } from '../outbound/flow-server.js';
import { ParkedStreams } from '../outbound/parked-streams.js';
import { readLocalRoutes } from '../outbound/local-routes.js';
import type { NetworkLease, OutboundPorts } from '../outbound/outbound.js';
import { RESOLV_CONF_PATH, parseResolvConf } from '../outbound/resolv-conf.js';
import type { SessionChannel } from './daemon.js';
import type { Logger } from './logger.js';
import { PodManagerClient } from './manager-connection.js';

export interface OutboundPortsOptions {
  /** The daemon's socket: the flow socket goes beside it, in the same private folder. */
  readonly daemonSocketPath: string;
  /** The CLI bundle, which the network daemon runs as (`network-daemon`). */
  readonly cliPath: string;
  readonly log: Logger;
}

/** A cluster question crosses the port-forward and the manager: 2 s means the cluster is unwell. */
const LOOKUP_TIMEOUT_MS = 2_000;
const CALL_TIMEOUT_MS = 10_000;

function managerUnreachable(details: string): TpError {
  return new TpError('cluster', 'manager-unreachable', `cannot reach the traffic-manager: ${details}`, {
    hint: 'check the connection with `kubectl telepresence status`',
  });
}

/**
 * Waits until the network daemon has deleted the device, its last step of taking outbound
 * access down (the DNS redirect and the engine go first; the routes go with the device), so
 * that `quit` returns only once the cluster's addresses are no longer routed here. Bounded: the
 * network daemon removes it in milliseconds, and a daemon that hangs must not hang quit.
 */
async function deviceGone(device: string): Promise<void> {
  const deadline = Date.now() + DEVICE_GONE_WAIT_MS;
  while (existsSync(join('/sys/class/net', device)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

const DEVICE_GONE_WAIT_MS = 5_000;

/** Builds the ports of one session's outbound access. */
export function outboundPorts(options: OutboundPortsOptions): (session: SessionChannel) => OutboundPorts {
  const { log } = options;
  return (session) => ({
    getClusterInfo: () => {
      const mgr = session.manager();
      return unary(mgr.getClusterInfo.bind(mgr), session.info(), { deadline: deadlineIn(CALL_TIMEOUT_MS), unavailable: managerUnreachable });
    },
    localRoutes: readLocalRoutes,
    startFlowServer: async (cluster) => {
      const dialPort = cluster.dialPort ?? 0;
      // The fast path needs the manager's dial port and a manager reached by port-forward, whose
      // client can open more streams to its pod (the session's channel changes when it is
      // remade, so each stream asks for the current one).
      const parked =
        dialPort > 0 && session.manager() instanceof PodManagerClient
          ? new ParkedStreams({
              open: () => {
                const mgr = session.manager();
                return mgr instanceof PodManagerClient ? mgr.openPodStream(dialPort) : Promise.reject(new Error('the traffic-manager is not reached through a port-forward'));
              },
              log,
            })
          : undefined;
      const takeParked = parked !== undefined ? () => parked.take() : undefined;
      const server = await startFlowServer(
        { openOutbound: () => session.manager().outbound(), sessionId: () => session.info().sessionId, log, ...(takeParked !== undefined ? { takeParked } : {}) },
        { socketPath: join(dirname(options.daemonSocketPath), 'outbound.sock') },
      );
      parked?.start();
      return {
        socketPath: server.socketPath,
        stats: () => server.stats(),
        close: async () => {
          parked?.close();
          await server.close();
        },
      };
    },
    startDnsServer: async ({ namespace, clusterDomain, routed }) => {
      const resolv = parseResolvConf(await readFile(RESOLV_CONF_PATH, 'utf8').catch(() => ''));
      return startDnsServer({
        upstreamPort: 0,
        askCluster: async (query) => {
          const mgr = session.manager();
          const res = await unary(mgr.lookupDns.bind(mgr), { session: session.info(), query }, { deadline: deadlineIn(LOOKUP_TIMEOUT_MS), unavailable: managerUnreachable });
          return Buffer.from(res.response.buffer, res.response.byteOffset, res.response.byteLength);
        },
        config: { namespace, clusterDomain, routedSubnets: routed, nameservers: resolv.nameservers },
        log,
      });
    },
    acquireNetwork: async (config, progress, onLost): Promise<NetworkLease> => {
      const euid = process.geteuid?.() ?? -1;
      const api: NetworkApi = await connectNetworkDaemon({ cliPath: options.cliPath });
      try {
        const outbound = await api.outbound(config, progress);
        let released = false;
        void outbound.ended.then((err) => {
          if (err !== undefined && !released) onLost(err);
        });
        return {
          ready: outbound.ready,
          release: async () => {
            released = true;
            outbound.stop();
            // As root we started the network daemon ourselves (or could have): stop it, which
            // answers only once the device, routes and redirect are gone. A daemon that a user
            // started with sudo keeps running for the next connect; it takes them down on its own.
            if (euid === 0) await api.quit().catch((e: unknown) => log('warn', `stopping the network daemon: ${String(e)}`));
            else await deviceGone(outbound.ready.device);
            api.close();
          },
        };
      } catch (err: unknown) {
        // A network daemon we may have started for this connect is not left behind.
        if (euid === 0) await api.quit().catch(() => undefined);
        api.close();
        throw err;
      }
    },
    log: (level, message) => log(level, message),
  });
}
