/**
 * Keeps the daemon's one traffic-manager session alive: opens it (Version, ArriveAsClient), sends
 * its heartbeat, holds its three watches (agents, intercepts, dials), and brings it back when the
 * channel or the session is lost (a new port-forward; ArriveAsClient again with resumeSessionId).
 * Commands reach the manager through managerCall(), which waits for a recovery under way.
 */
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { AgentInfo, AgentSnapshot, DialRequest, InterceptInfo, InterceptSnapshot, ManagerClient, SessionInfo } from '@telepresence-ts/proto/manager/v1';
import { Backoff, type BackoffClock } from '../backoff.js';
import { systemClock, type Clock } from '../clock.js';
import { TpError, toTpError } from '../errors.js';
import { isTransportFailure } from '../wire-errors.js';
import { deadlineIn, unary } from '../grpc-call.js';
import type { KubeFlags } from '../kube/kube-api.js';
import type { OutboundAccess, OutboundOptions } from '../outbound/outbound.js';
import { DirectTunnels } from './direct.js';
import type { Logger } from './logger.js';
import type { ManagerConnection, ManagerConnector } from './manager-connection.js';
import { runTunnel } from './tunnel.js';
import { serveCopies, tunnelCallDuplex } from './copies.js';

export interface ConnectArgs {
  readonly flags: KubeFlags;
  readonly managerNamespace: string;
  /** "cli" or "vscode". */
  readonly product: string;
  /** Outbound access; the defaults (on, nothing extra) when absent. */
  readonly outbound?: OutboundOptions;
}

/** Deadline of the unary calls we make to the manager: a port-forward hop, but no cluster work. */
const CALL_TIMEOUT_MS = 10_000;
/**
 * Deadline of the Remain that tells a live session on a dead channel from a lost one: short, since
 * a manager pod that was replaced leaves a port-forward that never answers.
 */
const PROBE_TIMEOUT_MS = 3_000;
/**
 * Pauses between recovery attempts (full jitter, see Backoff): a new manager pod is usually Ready
 * within two seconds, so the first retry comes within 250 ms and none waits more than 5 s.
 */
export const RECOVERY_BACKOFF = { initialMs: 250, maxMs: 5_000 };
/** Watches that ended sooner than this after they were opened are opened again only this long after. */
const REWATCH_MIN_INTERVAL_MS = 1_000;
/** How long a command waits for a recovery under way (a manager restarting) before it tries anyway. */
const RECOVERY_WAIT_MS = 30_000;
/** The heartbeat period when the manager names none. */
const DEFAULT_HEARTBEAT_SECONDS = 5;

/** `major.minor` of a version string, or the whole string when it has no such prefix. */
export function majorMinor(version: string): string {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  return m === null ? version : `${m[1]}.${m[2]}`;
}

/** `version-mismatch` unless both versions share major.minor. */
export function checkManagerVersion(client: string, manager: string): void {
  if (majorMinor(client) !== majorMinor(manager)) {
    throw new TpError('config', 'version-mismatch', `this client is v${client} but the traffic-manager is v${manager}: their major.minor versions must match`, {
      hint: `run \`kubectl telepresence install\` with this v${client} client to replace the traffic-manager, or use a v${majorMinor(manager)}.x client`,
    });
  }
}

/** The error of a manager call that found no manager. */
export function managerUnavailable(details: string): TpError {
  return new TpError('cluster', 'manager-unreachable', `cannot reach the traffic-manager: ${details}`, {
    hint: 'check the connection with `kubectl telepresence status`, then `kubectl telepresence quit` and connect again',
  });
}

/** Options of a unary call to the manager. (gRPC deadlines are wall-clock dates: they stay real.) */
export const callOptions = (): { deadline: Date; unavailable: (d: string) => TpError } => ({ deadline: deadlineIn(CALL_TIMEOUT_MS), unavailable: managerUnavailable });

/** The gRPC status code under a TpError rebuilt from a failed call, if any. */
export function grpcCodeOf(err: unknown): number | undefined {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof Error && typeof (cause as Partial<ServiceError>).code === 'number' ? (cause as ServiceError).code : undefined;
}

/**
 * `clock.sleep(ms)`; with the real clock, a timer that does not keep the process alive, so a
 * daemon that quits does not wait for a heartbeat or a retry that will never matter.
 */
export function pause(clock: Clock, ms: number): Promise<void> {
  if (clock !== systemClock) return clock.sleep(ms);
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The Backoff's timer on a Clock. */
function backoffClock(clock: Clock): BackoffClock {
  return {
    now: () => clock.now(),
    setTimer(ms, fn) {
      let live = true;
      void pause(clock, ms).then(() => {
        if (live) fn();
      });
      return () => {
        live = false;
      };
    },
  };
}

interface Cancellable {
  cancel(): void;
}

/** One live connection: the port-forwarded channel, the session on it and its background work. */
export interface Session {
  readonly args: ConnectArgs;
  conn: ManagerConnection;
  info: SessionInfo;
  managerVersion: string;
  /** The traffic-agent image the manager injects (its Version answer). */
  agentImage: string;
  streams: Cancellable[];
  closing: boolean;
  /** Aborted when the session is closed: ends its heartbeat and a recovery's pause. */
  readonly closed: AbortController;
  /** When the watches were last opened (clock.now()). */
  watchesStartedAt: number;
  /** Set while the session is being recovered (see recover()); commands wait for it. */
  recovering: Promise<void> | undefined;
  /** How many times the session arrived again at a manager that had lost it. */
  arrivedAgain: number;
  /** Set from an arrival again until our intercepts were all made again on that manager. */
  restorePending: boolean;
  /** Streams parked at the agents of our intercepts, for the current session id. */
  direct: DirectTunnels | undefined;
  /** Outbound access for this connection (off when the connect asked for none). */
  outbound: OutboundAccess | undefined;
}

/** What the keeper tells the rest of the daemon. */
export interface SessionEvents {
  /** Something a watcher of the daemon's state would see has changed. */
  changed(): void;
  /** A WatchIntercepts snapshot of session `s` came (after `allIntercepts` was updated). */
  intercepts(s: Session, snap: InterceptSnapshot): void;
  /**
   * The local port of our intercept `id`, for a connection an agent hands to a parked stream (a
   * replace's: the one its container port maps to).
   */
  localPortOf(interceptId: string, containerPort?: number): number | undefined;
  /** Whether our intercept `id` is a wiretap: its tunnels carry copies (core/src/copy-frames.ts). */
  isWiretap?(interceptId: string): boolean;
  /**
   * The manager had lost the session and it arrived again (its watches are open): our intercepts
   * must be made again. A throw makes the recovery try again.
   */
  arrivedAgain(s: Session): Promise<void>;
  /** A recovery attempt failed (`message`), or one succeeded (`undefined`). */
  recoveryState(message: string | undefined): void;
  /**
   * The manager was replaced by one of another major.minor version (an upgrade): the session
   * cannot go on, and recovery stops. `err` is the version-mismatch error, with its fix.
   */
  incompatible(s: Session, err: TpError): Promise<void>;
}

export interface SessionKeeperDeps {
  readonly version: string;
  readonly connector: ManagerConnector;
  readonly log: Logger;
  readonly clientName: string;
  readonly installId: string;
  readonly clock?: Clock;
  /** Default: Math.random (the recovery's jitter). */
  readonly random?: () => number;
  readonly events: SessionEvents;
}

export class SessionKeeper {
  private readonly deps: SessionKeeperDeps;
  private readonly clock: Clock;
  /** The open session, if any. */
  current: Session | undefined;
  /** The latest WatchAgents and WatchIntercepts snapshots (every client's intercepts). */
  agents: AgentInfo[] = [];
  allIntercepts: InterceptInfo[] = [];
  /** Intercepted connections received over direct tunnels and through the manager, this connection. */
  directConnections = 0;
  relayedConnections = 0;
  private readonly tunnels = new Set<Promise<void>>();

  constructor(deps: SessionKeeperDeps) {
    this.deps = deps;
    this.clock = deps.clock ?? systemClock;
  }

  /** Opens a session (checking the manager's version) and starts its heartbeat and watches; it becomes `current`. */
  async open(args: ConnectArgs): Promise<Session> {
    this.directConnections = 0;
    this.relayedConnections = 0;
    const conn = await this.deps.connector(args.flags, args.managerNamespace);
    try {
      const mgr = conn.manager;
      const version = await unary(mgr.version.bind(mgr), {}, callOptions());
      checkManagerVersion(this.deps.version, version.version);
      const info = await this.arrive(conn, args);
      const session: Session = {
        args,
        conn,
        info,
        managerVersion: version.version,
        agentImage: version.agentImage,
        streams: [],
        watchesStartedAt: 0,
        closing: false,
        closed: new AbortController(),
        recovering: undefined,
        arrivedAgain: 0,
        restorePending: false,
        direct: undefined,
        outbound: undefined,
      };
      this.current = session;
      void this.heartbeatLoop(session);
      this.startWatches(session);
      return session;
    } catch (err: unknown) {
      await conn.close();
      throw err;
    }
  }

  /** The current session, or `not-connected`. */
  require(): Session {
    if (this.current === undefined) {
      throw new TpError('user', 'not-connected', 'not connected to a cluster', { hint: 'run: kubectl telepresence connect' });
    }
    return this.current;
  }

  /** Stops the session's background work (heartbeat, watches, recovery, direct tunnels); it is no longer `current`. */
  detach(s: Session): void {
    s.closing = true;
    s.closed.abort();
    if (this.current === s) this.current = undefined;
    for (const stream of s.streams) {
      stream.cancel();
    }
    s.direct?.close();
  }

  /** Departs (briefly: the manager may be gone) and forgets the watches' snapshots. */
  async depart(s: Session): Promise<void> {
    try {
      const mgr = s.conn.manager;
      await unary(mgr.depart.bind(mgr), s.info, { deadline: deadlineIn(2_000) });
    } catch (err: unknown) {
      this.deps.log('warn', `depart failed: ${toTpError(err).message}`);
    }
  }

  /** Forgets the snapshots of the watches (after a disconnect). */
  forgetSnapshots(): void {
    this.agents = [];
    this.allIntercepts = [];
  }

  /** Waits at most `ms` for the tunnels of relayed connections to finish. */
  async tunnelsDone(ms: number): Promise<void> {
    await Promise.race([Promise.allSettled([...this.tunnels]), pause(this.clock, ms)]);
  }

  /** ArriveAsClient; `resumeSessionId` asks to keep the id of a session that was lost. */
  private async arrive(conn: ManagerConnection, args: ConnectArgs, resumeSessionId = ''): Promise<SessionInfo> {
    const mgr = conn.manager;
    return unary(
      mgr.arriveAsClient.bind(mgr),
      { name: this.deps.clientName, installId: this.deps.installId, product: args.product, version: this.deps.version, resumeSessionId },
      callOptions(),
    );
  }

  /** A Remain every heartbeat period, until the session is closed. */
  private async heartbeatLoop(s: Session): Promise<void> {
    while (!s.closing) {
      const seconds = s.info.heartbeatSeconds > 0 ? s.info.heartbeatSeconds : DEFAULT_HEARTBEAT_SECONDS;
      await pause(this.clock, seconds * 1000);
      // Not awaited: a Remain stuck on a dead channel must not hold the next one back.
      if (!s.closing) void this.heartbeat(s);
    }
  }

  private startWatches(s: Session): void {
    for (const stream of s.streams) {
      stream.cancel();
    }
    if (s.direct?.sessionId !== s.info.sessionId) {
      // Agents hand connections to the streams of the session that owns the intercept.
      s.direct?.close();
      s.direct = new DirectTunnels({
        sessionId: s.info.sessionId,
        openPodStream: (namespace, pod, port) => s.conn.kube.openPodStream(namespace, pod, port),
        localPortOf: (id, containerPort) => this.deps.events.localPortOf(id, containerPort),
        log: this.deps.log,
        onConnection: () => this.directConnections++,
        isWiretap: (id) => this.deps.events.isWiretap?.(id) === true,
      });
    }
    const mgr = s.conn.manager;
    const agents = mgr.watchAgents(s.info);
    agents.on('data', (snap: AgentSnapshot) => {
      this.agents = snap.agents;
      this.deps.events.changed();
    });
    const intercepts = mgr.watchIntercepts(s.info);
    intercepts.on('data', (snap: InterceptSnapshot) => {
      this.allIntercepts = snap.intercepts;
      this.deps.events.intercepts(s, snap);
    });
    const dials = mgr.watchDials(s.info);
    dials.on('data', (dial: DialRequest) => this.dial(s, dial));
    const streams = [agents, intercepts, dials];
    for (const [name, stream] of [['WatchAgents', agents], ['WatchIntercepts', intercepts], ['WatchDials', dials]] as const) {
      stream.on('error', (err: Error) => this.watchEnded(s, streams, name, err));
      stream.on('end', () => this.watchEnded(s, streams, name, undefined));
    }
    s.streams = streams;
    s.watchesStartedAt = this.clock.now();
  }

  /** A watch ended: unless we cancelled it, the channel or the session is in trouble. */
  private watchEnded(s: Session, streams: Cancellable[], name: string, err: Error | undefined): void {
    if (s.closing || s.streams !== streams || this.current !== s) {
      return;
    }
    this.deps.log('warn', `${name} ended${err !== undefined ? `: ${err.message}` : ''}`);
    s.streams = [];
    for (const stream of streams) {
      stream.cancel();
    }
    // Watches that a live manager keeps ending are not re-opened in a tight loop.
    const wait = Math.max(0, s.watchesStartedAt + REWATCH_MIN_INTERVAL_MS - this.clock.now());
    void pause(this.clock, wait).then(() => this.recover(s));
  }

  private dial(s: Session, dial: DialRequest): void {
    this.deps.log('debug', `dial ${dial.connectionId} from ${dial.source} to localhost:${dial.localPort}`);
    this.relayedConnections++;
    const mgr = s.conn.manager;
    let done: Promise<void>;
    if (this.deps.events.isWiretap?.(dial.interceptId) === true) {
      const call = mgr.tunnel();
      call.write({ open: { sessionId: s.info.sessionId, connectionId: dial.connectionId, interceptId: dial.interceptId, protocol: '', destination: '', containerPort: 0 } });
      done = serveCopies(tunnelCallDuplex(call), dial.localPort, this.deps.log);
    } else {
      done = runTunnel(() => mgr.tunnel(), s.info.sessionId, dial, this.deps.log);
    }
    this.tunnels.add(done);
    void done.finally(() => this.tunnels.delete(done));
  }

  /** Remain; any failure hands the session to recover(). */
  private async heartbeat(s: Session): Promise<void> {
    if (s.closing || s.recovering !== undefined) {
      return;
    }
    try {
      const mgr = s.conn.manager;
      await unary(mgr.remain.bind(mgr), s.info, callOptions());
    } catch (err: unknown) {
      if (!s.closing) {
        this.deps.log('warn', `heartbeat failed: ${toTpError(err).message}`);
        void this.recover(s);
      }
    }
  }

  /**
   * Brings a troubled session back, once at a time: the watches again when the session is alive;
   * a new port-forward when the channel is dead (the manager's pod was replaced); and, when the
   * manager no longer knows the session (it restarted, or the session expired), arrives again
   * under the same id and has the intercepts made again (SessionEvents.arrivedAgain). Retries
   * with backoff until it works or the session is closed; commands wait for it (see managerCall()).
   */
  recover(s: Session): Promise<void> {
    s.recovering ??= this.recoverLoop(s).finally(() => {
      s.recovering = undefined;
      this.deps.events.changed();
    });
    return s.recovering;
  }

  private async recoverLoop(s: Session): Promise<void> {
    const backoff = new Backoff({ ...RECOVERY_BACKOFF, clock: backoffClock(this.clock), random: this.deps.random });
    const started = this.clock.now();
    for (;;) {
      if (s.closing || this.current !== s) return;
      try {
        await this.recoverOnce(s);
        this.deps.log('info', `session ${s.info.sessionId} recovered in ${this.clock.now() - started} ms`);
        return;
      } catch (err: unknown) {
        if (s.closing || this.current !== s) return;
        const e = toTpError(err);
        if (e.code === 'version-mismatch') {
          this.deps.log('warn', `the traffic-manager was replaced by one this client cannot use: ${e.message}`);
          await this.deps.events.incompatible(s, e);
          return;
        }
        const message = `the traffic-manager cannot be reached; trying again: ${e.message}`;
        this.deps.log('warn', message);
        this.deps.events.recoveryState(message);
      }
      if (!(await backoff.wait(s.closed.signal))) return;
    }
  }

  private async recoverOnce(s: Session): Promise<void> {
    let alive = await this.probe(s);
    if (alive === undefined) {
      // The channel is dead (the manager's pod is gone, or the port-forward broke): a new one, to
      // whichever manager pod is Ready now, whose version must still match ours.
      const conn = await this.deps.connector(s.args.flags, s.args.managerNamespace);
      if (s.closing) {
        await conn.close();
        return;
      }
      try {
        const version = await unary(conn.manager.version.bind(conn.manager), {}, callOptions());
        checkManagerVersion(this.deps.version, version.version);
        s.managerVersion = version.version;
        s.agentImage = version.agentImage;
      } catch (err: unknown) {
        await conn.close();
        throw err;
      }
      const old = s.conn;
      s.conn = conn;
      await old.close();
      this.deps.log('info', 'reconnected to the traffic-manager');
      alive = await this.probe(s);
      if (alive === undefined) throw new TpError('cluster', 'manager-unreachable', 'the traffic-manager does not answer on a new port-forward');
    }
    if (!alive) {
      // The manager does not know the session: arrive again, keeping the id when it can, so that
      // the intercepts, created again, keep theirs.
      const lostId = s.info.sessionId;
      s.info = await this.arrive(s.conn, s.args, lostId);
      s.arrivedAgain++;
      s.restorePending = true;
      this.deps.log('info', s.info.sessionId === lostId ? `arrived again as session ${lostId}` : `arrived again as session ${s.info.sessionId} (was ${lostId})`);
    }
    this.startWatches(s);
    // Also on an attempt after one that arrived again but could not make every intercept again:
    // the session is alive then, and the intercepts still missing.
    if (s.restorePending) {
      await this.deps.events.arrivedAgain(s);
      s.restorePending = false;
    }
    this.deps.events.recoveryState(undefined);
  }

  /** Remain on the current channel: true when the session is alive, false when the manager does not know it, undefined when the channel does not answer. */
  private async probe(s: Session): Promise<boolean | undefined> {
    try {
      const mgr = s.conn.manager;
      await unary(mgr.remain.bind(mgr), s.info, { deadline: deadlineIn(PROBE_TIMEOUT_MS), unavailable: managerUnavailable });
      return true;
    } catch (err: unknown) {
      if (grpcCodeOf(err) === grpcStatus.NOT_FOUND) return false;
      this.deps.log('warn', `the traffic-manager did not answer: ${toTpError(err).message}`);
      return undefined;
    }
  }

  /**
   * A manager call made for a command: waits for a recovery under way, and, when the channel
   * turns out to be dead, recovers and tries once more. So a command run just after the manager
   * was replaced waits for the new one instead of failing.
   */
  async managerCall<T>(s: Session, call: (mgr: ManagerClient, session: SessionInfo) => Promise<T>, inRecovery = false): Promise<T> {
    // The recovery's own calls neither wait for it nor start it: it retries them itself.
    if (!inRecovery) await this.recovered(s);
    try {
      return await call(s.conn.manager, s.info);
    } catch (err: unknown) {
      const dead = isTransportFailure(err);
      if (inRecovery || s.closing || (!dead && toTpError(err).code !== 'session-expired')) throw err;
      this.deps.log('info', `the traffic-manager call failed (${toTpError(err).message}); recovering the session first`);
      await this.recovered(s, this.recover(s));
      return call(s.conn.manager, s.info);
    }
  }

  /** Waits (bounded) for the session's recovery, if one is under way. */
  async recovered(s: Session, recovery: Promise<void> | undefined = s.recovering): Promise<void> {
    if (recovery === undefined) return;
    await Promise.race([recovery, pause(this.clock, RECOVERY_WAIT_MS)]);
  }
}
