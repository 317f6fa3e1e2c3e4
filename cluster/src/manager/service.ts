/**
 * The Manager gRPC service: a thin edge that maps messages onto State, prepare and the KubeApi,
 * and every error onto a gRPC status with `tp-error-*` trailing metadata.
 */
import type {
  Server,
  ServerDuplexStream,
  ServerErrorResponse,
  ServerWritableStream,
  handleServerStreamingCall,
  handleUnaryCall,
  sendUnaryData,
} from '@grpc/grpc-js';
import { TpError, isTpError } from '@telepresence-ts/core/errors';
import { VERSION } from '@telepresence-ts/core/version';
import { encodeTunnelMessage, RAW_TUNNEL_SERVICE, rawTunnelKind, tryDecodeTunnelMessage, type RawTunnelManagerServer } from '@telepresence-ts/proto/manager/v1/tunnel';
import { parseAgentConfig } from '@telepresence-ts/core/agent-config';
import { isReplace } from '@telepresence-ts/core/engagement';
import type { TrafficReport } from '@telepresence-ts/proto/manager/v1';
import type { Clock } from '../shared/clock.js';
import { toServiceError } from '../shared/grpc-errors.js';
import { widenConnectionWindow } from '../shared/grpc-window.js';
import type { Logger } from '../shared/log.js';
import { resolveTarget, resolvedSpec, toInterceptTarget, type BuildOptions } from './agent-config-builder.js';
import type { ClusterInfoProvider } from './cluster-info.js';
import type { InjectorHealthApi } from './injector-health.js';
import { askDns, checkDnsQuery, DNS_PORT } from './dns.js';
import type { KubeApi } from './kube.js';
import { OutboundFlows, type OutboundOptions } from './outbound.js';
import { prepareIntercept, type PrepareDeps, type RoutingProbe } from './prepare.js';
import { ReplaceSync } from './replace.js';
import type { State } from './state.js';
import { Traffic } from './traffic.js';

export interface ServiceDeps {
  readonly state: State;
  readonly kube: KubeApi;
  readonly clock: Clock;
  readonly build: BuildOptions;
  readonly prepareTimeoutMs: number;
  readonly log: Logger;
  /** The addresses of the manager's pod, which agents learn on arrival (`SessionInfo.manager_pod_ips`). */
  readonly podIps?: readonly string[];
  /** Probes a Service after a rollout (prepare.ts); used only when `podIps` names an address. */
  readonly probeRouting?: RoutingProbe;
  /** What prepare checks of the agent-injector before a rollout, and reads to say why pods lack the agent. */
  readonly injector?: InjectorHealthApi;
  /** The ConfigMap watcher, whose lines about restarts a prepare passes on as progress. */
  readonly rollouts?: PrepareDeps['rollouts'];
  /** What GetClusterInfo answers, and the DNS server that LookupDNS asks (cluster-info.ts). */
  readonly clusterInfo: Pick<ClusterInfoProvider, 'get' | 'dns'>;
  /** The port of the DNS server: 53, but for tests. */
  readonly dnsPort?: number;
  /** The dial port of the outbound fast path (dial-port.ts), which GetClusterInfo reports; none when absent. */
  readonly dialPort?: number;
  /** Gives replaced containers back when their replace ends; one of its own when absent. */
  readonly replaceSync?: ReplaceSync;
  /** Outbound's timeouts and TCP dial (outbound.ts), for tests. */
  readonly outbound?: Pick<OutboundOptions, 'connectTimeoutMs' | 'udpIdleMs' | 'dialTcp'>;
}

function logFailure(log: Logger, method: string, err: unknown): ServerErrorResponse {
  const e = toServiceError(err);
  // Internal errors are our bugs: log them with the stack. The rest is the caller's business.
  if (!isTpError(err) || err.category === 'internal') log.error(`${method} failed`, { error: e.message, stack: (err as Error).stack });
  else log.debug(`${method} refused`, { code: err.code, error: err.message });
  return e;
}

function unary<Req, Res>(log: Logger, method: string, fn: (req: Req) => Res | Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback: sendUnaryData<Res>) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(logFailure(log, method, err)),
      );
  };
}

/** A server stream fed by a State subscription until the session ends or the caller goes away. */
function watch<Req, Res, T>(
  log: Logger,
  method: string,
  subscribe: (req: Req, sub: { next(v: T): void; end(): void }) => () => void,
  toMessage: (v: T) => Res,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    let unsubscribe: () => void;
    try {
      unsubscribe = subscribe(call.request, {
        next: (v) => void call.write(toMessage(v)),
        end: () => call.end(),
      });
    } catch (err: unknown) {
      call.emit('error', logFailure(log, method, err));
      return;
    }
    call.once('cancelled', unsubscribe);
    call.once('close', unsubscribe);
  };
}

const missing = (what: string): TpError => new TpError('user', 'bad-request', `the request has no ${what}`);

/** Adds the Manager service to a grpc-js server. */
/** What the manager's shutdown asks of the service beyond State.close(). */
export interface ServiceHandle {
  /**
   * Ends the streams that only their clients end (the agents' ReportTraffic), so a graceful
   * shutdown finishes at once rather than serving its grace out: meanwhile a client that lost
   * its watches would arrive again at this stopping manager, and its calls be cut at the end.
   */
  endClientStreams(): void;
  /** How many such streams are open. */
  readonly clientStreams: number;
}

export function addToServer(server: Server, deps: ServiceDeps): ServiceHandle {
  const { state, kube, log } = deps;
  const podIps = deps.podIps ?? [];
  // Agents answer probes only from an address they were given: without one, probing is pointless.
  const probeRouting = podIps.length > 0 ? deps.probeRouting : undefined;
  const traffic = new Traffic(state, deps.clock);
  /** Ends each open ReportTraffic stream (see ServiceHandle). */
  const openReports = new Set<() => void>();
  const replaceSync = deps.replaceSync ?? new ReplaceSync({ kube, state, log });
  state.onReplaceEnded((namespace, name) => void replaceSync.sync(namespace, name));
  const outbound = new OutboundFlows({ log, requireClient: (id) => state.requireClient(id), ...deps.outbound });
  const impl: RawTunnelManagerServer = {
    version: unary(log, 'Version', () => ({ version: VERSION, name: 'traffic-manager', agentImage: deps.build.agentImage })),
    arriveAsClient: unary(log, 'ArriveAsClient', (info) => {
      const s = state.arriveAsClient(info);
      log.info('client arrived', { session: s.sessionId, name: info.name });
      return s;
    }),
    arriveAsAgent: unary(log, 'ArriveAsAgent', (info) => {
      const s = state.arriveAsAgent(info);
      log.info('agent arrived', { session: s.sessionId, pod: `${info.namespace}/${info.podName}` });
      return { ...s, managerPodIps: [...podIps] };
    }),
    remain: unary(log, 'Remain', (s) => {
      state.remain(s.sessionId);
      return {};
    }),
    depart: unary(log, 'Depart', (s) => {
      state.depart(s.sessionId);
      return {};
    }),
    watchAgents: watch(log, 'WatchAgents', (s, sub) => state.watchAgents(s.sessionId, sub), (agents) => ({ agents })),
    watchIntercepts: watch(log, 'WatchIntercepts', (s, sub) => state.watchIntercepts(s.sessionId, sub), (intercepts) => ({ intercepts })),
    watchDials: watch(log, 'WatchDials', (s, sub) => state.watchDials(s.sessionId, sub), (dial) => dial),

    prepareIntercept: (call) => {
      const ac = new AbortController();
      call.once('cancelled', () => ac.abort());
      Promise.resolve()
        .then(async () => {
          const { session, spec } = call.request;
          if (session === undefined || spec === undefined) throw missing('session or spec');
          state.requireClient(session.sessionId);
          const replaces = { sessionId: session.sessionId, state };
          return prepareIntercept(
            { kube, state, clock: deps.clock, build: deps.build, timeoutMs: deps.prepareTimeoutMs, probeRouting, injector: deps.injector, rollouts: deps.rollouts, replaces },
            spec,
            (progress) => void call.write({ progress }),
            ac.signal,
          );
        })
        .then(
          (prepared) => {
            // A replace that ended while this prepare wrote the entry from an older view of them.
            if (prepared.spec !== undefined) void replaceSync.afterPrepare(prepared.spec.namespace, prepared.spec.workloadName);
            call.write({ prepared });
            call.end();
          },
          (err: unknown) => {
            if (!ac.signal.aborted) call.emit('error', logFailure(log, 'PrepareIntercept', err));
          },
        );
    },

    createIntercept: unary(log, 'CreateIntercept', async ({ session, spec }) => {
      if (session === undefined || spec === undefined) throw missing('session or spec');
      state.requireClient(session.sessionId);
      const text = await kube.getAgentConfig(spec.namespace, spec.workloadName);
      if (text === undefined) {
        throw new TpError('user', 'not-prepared', `${spec.namespace}/${spec.workloadName} has no traffic-agent configuration`, {
          hint: 'prepare the intercept first (PrepareIntercept)',
        });
      }
      const config = parseAgentConfig(spec.workloadName, text);
      const target = resolveTarget(config, spec);
      const resolved = resolvedSpec(spec, config, target);
      let info;
      try {
        info = state.createIntercept(session.sessionId, resolved, toInterceptTarget(target, config));
      } catch (err: unknown) {
        // Its prepare held the container and marked it in the entry: give it back.
        if (isReplace(resolved)) state.releaseReplace(session.sessionId, resolved.name);
        throw err;
      }
      log.info('intercept created', { id: info.id, client: info.clientName });
      return info;
    }),

    removeIntercept: unary(log, 'RemoveIntercept', ({ session, name }) => {
      if (session === undefined) throw missing('session');
      state.removeIntercept(session.sessionId, name);
      return {};
    }),

    getInterceptEnvironment: unary(log, 'GetInterceptEnvironment', ({ session, name }) => {
      if (session === undefined) throw missing('session');
      return state.interceptEnvironment(session.sessionId, name);
    }),

    uninstallAgents: unary(log, 'UninstallAgents', async (req) => {
      if (req.session === undefined) throw missing('session');
      state.requireClient(req.session.sessionId);
      if (!req.all && req.workloadNames.length === 0) {
        throw new TpError('user', 'bad-request', 'name the workloads whose agents to remove, or ask for all', { hint: 'kubectl telepresence uninstall --agent <workload> (or --all-agents)' });
      }
      const entries = await kube.listAgentConfigs(req.namespace === '' ? undefined : req.namespace);
      const chosen = req.all ? entries : entries.filter((e) => req.workloadNames.includes(e.name));
      const unknown = req.all ? [] : req.workloadNames.filter((n) => !chosen.some((e) => e.name === n));
      if (unknown.length > 0) {
        throw new TpError('user', 'unknown-agent', `no traffic-agent is configured for ${unknown.join(', ')} in ${req.namespace === '' ? 'any namespace' : `namespace ${req.namespace}`}`);
      }
      const removed: string[] = [];
      for (const e of chosen) {
        if (await kube.removeAgentConfig(e.namespace, e.name)) removed.push(`${e.namespace}/${e.name}`);
      }
      return { removed };
    }),

    tunnel: (call) => tunnel(state, log, call),

    getClusterInfo: unary(log, 'GetClusterInfo', async (s) => {
      state.requireClient(s.sessionId);
      const info = await deps.clusterInfo.get();
      return deps.dialPort !== undefined && deps.dialPort > 0 ? { ...info, dialPort: deps.dialPort } : info;
    }),

    lookupDns: unary(log, 'LookupDNS', async ({ session, query }) => {
      if (session === undefined) throw missing('session');
      state.requireClient(session.sessionId);
      checkDnsQuery(query);
      const { dnsServer } = await deps.clusterInfo.dns();
      if (dnsServer === '') {
        throw new TpError('cluster', 'no-dns-server', "the traffic-manager's pod has no nameserver in its /etc/resolv.conf", {
          hint: "check the traffic-manager pod's dnsPolicy (ClusterFirst)",
        });
      }
      return { response: await askDns({ address: dnsServer, port: deps.dnsPort ?? DNS_PORT }, query) };
    }),

    outbound: (call) => {
      // Outbound streams share the client's connection with its Tunnel streams: the same window.
      widenConnectionWindow(call);
      outbound.handle(call);
    },

    reportTraffic: (call, cb) => {
      // One stream per agent session; a batch from a session that is gone fails the stream, and
      // the agent opens a new one when it arrives again.
      let failed = false;
      const finish = (): void => {
        openReports.delete(finish);
        if (failed) return;
        failed = true;
        cb(null, {});
      };
      openReports.add(finish);
      call.on('data', (report: TrafficReport) => {
        if (failed) return;
        try {
          if (report.session === undefined) throw missing('session');
          traffic.report(report.session.sessionId, report.events);
        } catch (err: unknown) {
          failed = true;
          openReports.delete(finish);
          cb(logFailure(log, 'ReportTraffic', err));
        }
      });
      call.on('end', finish);
      call.on('error', () => openReports.delete(finish));
      call.on('cancelled', () => openReports.delete(finish));
    },
    watchTraffic: (call) => {
      const { session, interceptId, bodyBytes } = call.request;
      let unsubscribe: () => void;
      try {
        if (session === undefined) throw missing('session');
        unsubscribe = traffic.watch(session.sessionId, interceptId, bodyBytes, {
          next: (e) => void call.write(e),
          end: (err) => (err === undefined ? call.end() : call.emit('error', toServiceError(err))),
        });
      } catch (err: unknown) {
        call.emit('error', logFailure(log, 'WatchTraffic', err));
        return;
      }
      call.once('cancelled', unsubscribe);
      call.once('close', unsubscribe);
    },
  };
  // Tunnel messages pass through unread (proto/src/tunnel.ts); every other method is as generated.
  server.addService(RAW_TUNNEL_SERVICE, impl);
  return {
    endClientStreams: () => {
      for (const finish of [...openReports]) finish();
    },
    get clientStreams() {
      return openReports.size;
    },
  };
}

/** A Tunnel stream whose messages stay encoded (RAW_TUNNEL_SERVICE). */
type TunnelCall = ServerDuplexStream<Buffer, Buffer>;

/**
 * One side of a connection. The first message must be `open`; the stream is paused until it is
 * paired (further messages wait in the stream's buffer). The client's side, which completes the
 * pairing, starts the relay; the agent's side only reports a failed pairing.
 */
function tunnel(state: State, log: Logger, call: TunnelCall): void {
  widenConnectionWindow(call);
  call.once('data', (first: Buffer) => {
    // Pause at once: in flowing mode, messages without a 'data' listener would be dropped.
    call.pause();
    const open = tryDecodeTunnelMessage(first)?.open;
    if (open === undefined) {
      call.emit('error', toServiceError(new TpError('internal', 'bad-tunnel', 'the first tunnel message must be open')));
      return;
    }
    const connectionId = open.connectionId;
    const isClient = state.sessionKind(open.sessionId) === 'client';
    const paired = state.openTunnel<TunnelCall>(open, call);
    // An agent whose caller hangs up before the owner dials back: forget the connection.
    if (!isClient) call.once('cancelled', () => state.cancelTunnel(connectionId));
    paired.then(
      (peer) => {
        if (isClient) relay(peer, call, log, connectionId);
      },
      (err: unknown) => call.emit('error', logFailure(log, 'Tunnel', err)),
    );
  });
}

/** An encoded `close` (proto/src/tunnel.ts). */
const closeMessage = (error: string): Buffer => encodeTunnelMessage({ close: { error } });

/**
 * Relays messages between the agent's and the client's streams until both sides have closed.
 * `data` messages pass on as they came, still encoded. `close` (or the end of a stream) is a
 * half-close passed on; a close with an error, or a stream that fails, ends the pair.
 * Backpressure: when the receiving side's write() returns false, the sending side is paused
 * until 'drain'.
 */
export function relay(agent: TunnelCall, client: TunnelCall, log: Logger, connectionId: string): void {
  let finished = false;
  const closedFrom = new Set<TunnelCall>();
  const finish = (): void => {
    if (finished) return;
    finished = true;
    for (const s of [agent, client]) if (!s.writableEnded) s.end();
  };
  const oneWay = (from: TunnelCall, to: TunnelCall): void => {
    let draining = false;
    const closeFrom = (error: string): void => {
      if (closedFrom.has(from)) return;
      closedFrom.add(from);
      if (!to.writableEnded) to.write(closeMessage(error));
      if (error !== '' || closedFrom.size === 2) finish();
    };
    from.on('data', (m: Buffer) => {
      if (finished) return;
      if (rawTunnelKind(m) === 'data') {
        if (!to.write(m) && !draining) {
          draining = true;
          from.pause();
          to.once('drain', () => {
            draining = false;
            from.resume();
          });
        }
        return;
      }
      const msg = tryDecodeTunnelMessage(m);
      if (msg === undefined) closeFrom('the other side sent a message that is not a tunnel message');
      else if (msg.close !== undefined) closeFrom(msg.close.error);
    });
    from.on('end', () => closeFrom(''));
    from.on('cancelled', () => closeFrom('the other side of the connection went away'));
    from.on('error', (err: Error) => {
      log.debug('tunnel stream failed', { connectionId, error: err.message });
      closeFrom(err.message || 'stream error');
    });
    from.resume();
  };
  oneWay(agent, client);
  oneWay(client, agent);
}
