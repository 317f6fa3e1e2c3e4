/**
 * The user daemon's centre: one traffic-manager session at a time (session-keeper.ts), the
 * intercepts this workstation owns (intercept-flow.ts), the workload list (workloads.ts) and
 * outbound access. The gRPC edge (server.ts) maps the Daemon service onto these methods; front
 * ends never talk to the manager themselves.
 */
import { ConnectionState, type ConnectionStatus, type InterceptRemote, type ListResponse, type StateSnapshot, type VersionResponse } from '@telepresence-ts/proto/daemon/v1';
import type { InterceptInfo, InterceptSpec, ManagerClient, SessionInfo, UninstallAgentsResponse } from '@telepresence-ts/proto/manager/v1';
import { systemClock, type Clock } from '../clock.js';
import type { InterceptOptions } from '../daemon-client.js';
import { TpError, toTpError } from '../errors.js';
import { unary } from '../grpc-call.js';
import { OUTBOUND_DEFAULTS, OutboundAccess, outboundOff, parseOutboundOptions, type OutboundOptions, type OutboundPorts } from '../outbound/outbound.js';
import { InterceptFlow } from './intercept-flow.js';
import type { Logger } from './logger.js';
import type { ManagerConnector } from './manager-connection.js';
import type { Mounter } from './mounts.js';
import { callOptions, SessionKeeper, type ConnectArgs, type Session } from './session-keeper.js';
import { relayTraffic, resolveEngagement, type TrafficSink } from './traffic-watch.js';
import { listWorkloads } from './workloads.js';

export { checkManagerVersion, majorMinor, type ConnectArgs } from './session-keeper.js';
export { checkWritableFile } from './local-inputs.js';

export interface DaemonDeps {
  /** This build's version; the manager's major.minor must match it. */
  readonly version: string;
  readonly connector: ManagerConnector;
  readonly log: Logger;
  /** "user@host" and a stable per-install id, for ArriveAsClient. */
  readonly clientName: string;
  readonly installId: string;
  /** Mounts remote volumes; without it, an intercept that asks for a mount is refused. */
  readonly mounter?: Mounter;
  /**
   * Builds the I/O of outbound access for a session (flow server, DNS resolver, network daemon).
   * Without it (unit tests of the rest), connections have no outbound access.
   */
  readonly outbound?: (session: SessionChannel) => OutboundPorts;
  /** Heartbeats, retries and polls wait on it; default: the real clock. */
  readonly clock?: Clock;
}

/** What outbound access needs of the current session; the channel changes when it is remade. */
export interface SessionChannel {
  manager(): ManagerClient;
  info(): SessionInfo;
}

/** How long shutdown waits for the tunnels of relayed connections to finish. */
const SHUTDOWN_TUNNELS_WAIT_MS = 1_000;

function sameArgs(a: ConnectArgs, b: ConnectArgs): boolean {
  return (
    (a.flags.kubeconfig ?? '') === (b.flags.kubeconfig ?? '') &&
    (a.flags.kubeconfigEnv ?? '') === (b.flags.kubeconfigEnv ?? '') &&
    (a.flags.context ?? '') === (b.flags.context ?? '') &&
    (a.flags.namespace ?? '') === (b.flags.namespace ?? '') &&
    a.managerNamespace === b.managerNamespace &&
    sameOutbound(a.outbound ?? OUTBOUND_DEFAULTS, b.outbound ?? OUTBOUND_DEFAULTS)
  );
}

function sameOutbound(a: OutboundOptions, b: OutboundOptions): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.disabled === b.disabled && same(a.alsoProxy, b.alsoProxy) && same(a.neverProxy, b.neverProxy);
}

export class Daemon {
  private readonly deps: DaemonDeps;
  private readonly keeper: SessionKeeper;
  private readonly flow: InterceptFlow;
  private connecting = false;
  private lastError = '';
  private readonly listeners = new Set<(s: StateSnapshot) => void>();

  constructor(deps: DaemonDeps) {
    this.deps = deps;
    const clock = deps.clock ?? systemClock;
    this.keeper = new SessionKeeper({
      version: deps.version,
      connector: deps.connector,
      log: deps.log,
      clientName: deps.clientName,
      installId: deps.installId,
      clock,
      events: {
        changed: () => this.emit(),
        intercepts: (s, snap) => this.flow.onSnapshot(s, snap),
        localPortOf: (id, containerPort) => this.flow.localPortOf(id, containerPort),
        isWiretap: (id) => this.flow.isWiretap(id),
        arrivedAgain: (s) => this.flow.restore(s),
        recoveryState: (message) => {
          this.lastError = message ?? this.flow.lostSummary();
          this.emit();
        },
        incompatible: (s, err) => this.endIncompatible(s, err),
      },
    });
    this.flow = new InterceptFlow({ keeper: this.keeper, log: deps.log, mounter: deps.mounter, clock, changed: () => this.emit() });
  }

  version(): VersionResponse {
    return { daemonVersion: this.deps.version, managerVersion: this.keeper.current?.managerVersion ?? '', agentImage: this.keeper.current?.agentImage ?? '' };
  }

  status(): ConnectionStatus {
    const s = this.keeper.current;
    return {
      // Connected only once connect has finished: outbound access comes up after the session opens.
      state: this.connecting ? ConnectionState.CONNECTING : s !== undefined ? ConnectionState.CONNECTED : ConnectionState.DISCONNECTED,
      context: s?.conn.target.context ?? '',
      namespace: s?.conn.target.namespace ?? '',
      clusterServer: s?.conn.target.server ?? '',
      managerNamespace: s?.args.managerNamespace ?? '',
      managerVersion: s?.managerVersion ?? '',
      sessionId: s?.info.sessionId ?? '',
      daemonVersion: this.deps.version,
      error: this.lastError,
      directConnections: this.keeper.directConnections,
      relayedConnections: this.keeper.relayedConnections,
      outbound: s === undefined ? undefined : (s.outbound?.status() ?? outboundOff()),
      lostIntercepts: this.flow.lostList(),
    };
  }

  snapshot(): StateSnapshot {
    return { connection: this.status(), intercepts: this.flow.list(), remotes: this.flow.remoteList() };
  }

  /** Calls `listener` now and on every change; returns the unsubscribe function. */
  watchState(listener: (s: StateSnapshot) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot());
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    // Every change of agents or of our intercepts comes through here: park where they now are.
    this.keeper.current?.direct?.update(this.keeper.agents, this.flow.list());
    const snap = this.snapshot();
    for (const l of this.listeners) {
      l(snap);
    }
  }

  /** Connects, or returns the current connection when the flags match it. */
  async connect(args: ConnectArgs, progress: (line: string) => void = () => undefined): Promise<ConnectionStatus> {
    const current = this.keeper.current;
    if (current !== undefined && sameArgs(current.args, args)) {
      return this.status();
    }
    // Bad subnets are the user's to fix before anything connects.
    const outbound = args.outbound ?? OUTBOUND_DEFAULTS;
    parseOutboundOptions(outbound);
    if (this.connecting) {
      throw new TpError('user', 'connect-in-progress', 'another connect is in progress', { hint: 'wait for it, then run the command again' });
    }
    await this.disconnect();
    this.connecting = true;
    this.lastError = '';
    this.emit();
    try {
      const session = await this.keeper.open(args);
      this.deps.log('info', `connected to ${session.conn.target.context} (manager v${session.managerVersion}, session ${session.info.sessionId})`);
      await this.startOutbound(session, outbound, progress);
    } catch (err: unknown) {
      this.lastError = toTpError(err).message;
      throw err;
    } finally {
      this.connecting = false;
      this.emit();
    }
    return this.status();
  }

  /** Brings outbound access up for a new session; on failure the session is closed again and the error thrown. */
  private async startOutbound(s: Session, options: OutboundOptions, progress: (line: string) => void): Promise<void> {
    const factory = this.deps.outbound;
    if (options.disabled || factory === undefined) return;
    const access = new OutboundAccess(factory({ manager: () => s.conn.manager, info: () => s.info }), options);
    s.outbound = access;
    try {
      await access.start(s.conn.target.namespace, progress, (err) => {
        this.lastError = err.message;
        this.emit();
      });
    } catch (err: unknown) {
      this.deps.log('warn', `outbound access failed: ${toTpError(err).message}`);
      await this.disconnect();
      throw err;
    }
  }

  /** Departs and closes the connection; a no-op when not connected. */
  async disconnect(): Promise<void> {
    const s = this.keeper.current;
    if (s === undefined) {
      return;
    }
    this.keeper.detach(s);
    await s.outbound?.stop();
    await this.keeper.depart(s);
    await this.flow.dropAll();
    await s.conn.close();
    this.flow.clear();
    this.keeper.forgetSnapshots();
    this.emit();
  }

  /**
   * The traffic-manager was upgraded under this connection to a version this client cannot speak
   * to: disconnect (volumes unmounted, intercepts forgotten), and say why and what to do in the
   * status, with each intercept that ended so.
   */
  private async endIncompatible(s: Session, err: TpError): Promise<void> {
    if (this.keeper.current !== s) return;
    const reason = err.hint !== undefined && err.hint !== '' ? `${err.message} (${err.hint})` : err.message;
    const ended = this.flow.list().map((ii) => ii.spec?.name ?? ii.id);
    await this.disconnect();
    this.flow.markLost(ended, reason);
    this.lastError = `disconnected: the traffic-manager was replaced: ${reason}`;
    this.emit();
  }

  /** Workloads of a namespace (the connection's when empty), with their agent and intercepts. */
  async list(namespace: string): Promise<ListResponse> {
    const s = this.keeper.require();
    return listWorkloads(s.conn.kube, namespace !== '' ? namespace : s.conn.target.namespace, this.keeper.agents, this.keeper.allIntercepts);
  }

  /**
   * Prepare (streaming `progress`), then create, then bring the container's environment (and, when
   * asked, its volumes) to the workstation; resolves with the created intercept, whose environment
   * and mount `remoteOf` then gives. A failure after create removes the intercept again.
   */
  async intercept(requested: InterceptSpec, progress: (line: string) => void, options: InterceptOptions = {}): Promise<InterceptInfo> {
    return this.flow.intercept(this.keeper.require(), requested, progress, options);
  }

  /** The environment and mount of our intercept `name`, once it is set up. */
  remoteOf(name: string): InterceptRemote | undefined {
    return this.flow.remoteOf(name);
  }

  /**
   * The traffic of the engagement `name` (ours first, else another client's; see
   * resolveEngagement), relayed from the manager to `sink` until the returned function is called
   * or the stream ends. Throws at once when not connected or the name is unknown.
   */
  watchTraffic(req: { name: string; namespace: string; bodyBytes: number }, sink: TrafficSink): () => void {
    const s = this.keeper.require();
    const ii = resolveEngagement(req.name, req.namespace, this.flow.list(), this.keeper.allIntercepts);
    return relayTraffic(s.conn.manager, s.info, ii.id, req.bodyBytes, sink);
  }

  async leave(name: string): Promise<void> {
    return this.flow.leave(this.keeper.require(), name);
  }

  /** Removes agent configurations; `allNamespaces` (with `all`) reaches every namespace. */
  async uninstallAgents(req: { namespace: string; workloadNames: readonly string[]; all: boolean; allNamespaces: boolean }): Promise<UninstallAgentsResponse> {
    const s = this.keeper.require();
    const { workloadNames, all } = req;
    if (!all && workloadNames.length === 0) {
      throw new TpError('user', 'bad-usage', 'no agents named', { hint: 'pass --agent <workload> or --all-agents' });
    }
    // The manager reads an empty namespace with `all` as every namespace.
    const ns = all && req.allNamespaces ? '' : req.namespace !== '' ? req.namespace : s.conn.target.namespace;
    return this.keeper.managerCall(s, (mgr, session) => unary(mgr.uninstallAgents.bind(mgr), { session, namespace: ns, workloadNames: [...workloadNames], all }, callOptions()));
  }

  /** Disconnects and waits (briefly) for tunnels to finish; the edge then stops the process. */
  async shutdown(): Promise<void> {
    await this.disconnect();
    await this.keeper.tunnelsDone(SHUTDOWN_TUNNELS_WAIT_MS);
    this.listeners.clear();
  }
}
