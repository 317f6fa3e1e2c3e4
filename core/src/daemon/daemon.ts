/**
 * The user daemon's centre: one traffic-manager session at a time, its heartbeat, its watches
 * (agents, intercepts, dials), the intercepts this workstation owns and their tunnels. The gRPC
 * edge (server.ts) maps the Daemon service onto these methods; front ends never talk to the
 * manager themselves.
 */
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import {
  ConnectionState,
  type ConnectionStatus,
  type InterceptRemote,
  type ListResponse,
  type LostIntercept,
  type StateSnapshot,
  type VersionResponse,
  type WorkloadInfo,
} from '@telepresence-ts/proto/daemon/v1';
import type {
  AgentInfo,
  AgentSnapshot,
  DialRequest,
  InterceptInfo,
  InterceptEnvironment,
  InterceptSnapshot,
  InterceptSpec,
  ManagerClient,
  SessionInfo,
  UninstallAgentsResponse,
} from '@telepresence-ts/proto/manager/v1';
import { AGENTS_CONFIGMAP } from '../contracts.js';
import { accessSync, constants as fsConstants, statSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { TpError, toTpError } from '../errors.js';
import type { InterceptOptions } from '../daemon-client.js';
import { deadlineIn, unary } from '../grpc-call.js';
import type { KubeFlags } from '../kube/kube-api.js';
import type { V1ConfigMap, V1Deployment, V1ReplicaSet, V1StatefulSet } from '../kube/kube-types.js';
import type { Logger } from './logger.js';
import type { ManagerConnection, ManagerConnector } from './manager-connection.js';
import type { ActiveMount, Mounter, PreparedMount } from './mounts.js';
import { formatDotenv, formatEnvJson, localEnvironment } from './remote-env.js';
import { DirectTunnels } from './direct.js';
import { runTunnel } from './tunnel.js';
import { TP_ERROR_METADATA, fromServiceError } from '../wire-errors.js';
import { OUTBOUND_DEFAULTS, OutboundAccess, outboundOff, parseOutboundOptions, type OutboundOptions, type OutboundPorts } from '../outbound/outbound.js';

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
}

/** What outbound access needs of the current session; the channel changes when it is remade. */
export interface SessionChannel {
  manager(): ManagerClient;
  info(): SessionInfo;
}


/** An intercept's environment and mount, while it lasts. */
interface Remote {
  readonly remote: InterceptRemote;
  readonly mount: ActiveMount | undefined;
}

/**
 * How long an intercept waits for streams to be parked at its agent before it returns: they
 * usually are within tens of milliseconds; a pod that cannot be port-forwarded to says so at once.
 */
const DIRECT_READY_WAIT_MS = 2_000;
/** How long to wait for an agent of the workload to report its environment after create. */
const ENVIRONMENT_WAIT_MS = 15_000;
const ENVIRONMENT_POLL_MS = 500;

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
/** Pauses between recovery attempts: a new manager pod is usually Ready within two seconds. */
const RECOVERY_BACKOFF = { initialMs: 250, maxMs: 5_000 };
/** Watches that ended sooner than this after they were opened are opened again only this long after. */
const REWATCH_MIN_INTERVAL_MS = 1_000;
/** How long a command waits for a recovery under way (a manager restarting) before it tries anyway. */
const RECOVERY_WAIT_MS = 30_000;

/**
 * `env-file-unwritable` unless `path` is absolute and a file there can be written: its folder
 * exists and is writable, and the path is not a folder or a read-only file.
 */
export function checkWritableFile(path: string, flag: string): void {
  const refuse = (why: string, hint: string): never => {
    throw new TpError('user', 'env-file-unwritable', `cannot write ${flag} ${path}: ${why}`, { hint });
  };
  if (!isAbsolute(path)) refuse('the path is not absolute', `front ends resolve ${flag} against their working directory`);
  const dir = dirname(path);
  const folder = statOrUndefined(dir);
  if (folder === undefined) refuse(`the folder ${dir} does not exist`, `create it first (mkdir -p ${dir}), or pass another ${flag}`);
  if (folder?.isDirectory() !== true) refuse(`${dir} is not a folder`, `pass another ${flag}`);
  if (!canAccess(dir, fsConstants.W_OK)) refuse(`the folder ${dir} is not writable`, `pass a path in a folder you can write to, e.g. ${flag} ./${basename(path)}`);
  const file = statOrUndefined(path);
  if (file?.isDirectory() === true) refuse('it is a folder', `pass a file name, e.g. ${flag} ${join(path, 'intercept.env')}`);
  if (file !== undefined && !canAccess(path, fsConstants.W_OK)) refuse('the file is read-only', `make it writable (chmod u+w ${path}), or pass another ${flag}`);
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

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

function managerUnavailable(details: string): TpError {
  return new TpError('cluster', 'manager-unreachable', `cannot reach the traffic-manager: ${details}`, {
    hint: 'check the connection with `kubectl telepresence status`, then `kubectl telepresence quit` and connect again',
  });
}

const callOptions = (): { deadline: Date; unavailable: (d: string) => TpError } => ({ deadline: deadlineIn(CALL_TIMEOUT_MS), unavailable: managerUnavailable });

/** The gRPC status code under a TpError rebuilt from a failed call, if any. */
function grpcCodeOf(err: unknown): number | undefined {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof Error && typeof (cause as Partial<ServiceError>).code === 'number' ? (cause as ServiceError).code : undefined;
}

/**
 * Whether a failed call carries a TpError the manager sent: its answer, over a live channel. Its
 * cluster errors travel as UNAVAILABLE like a dead channel's, but calling again would only redo
 * the work that failed (a prepare and its rollout).
 */
function answeredByManager(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  const metadata = (cause as Partial<ServiceError> | undefined)?.metadata;
  return metadata !== undefined && metadata.get(TP_ERROR_METADATA.code).length > 0;
}

interface Cancellable {
  cancel(): void;
}

/** One live connection: the port-forwarded channel, the session on it and its background work. */
interface Session {
  readonly args: ConnectArgs;
  conn: ManagerConnection;
  info: SessionInfo;
  managerVersion: string;
  streams: Cancellable[];
  heartbeat: NodeJS.Timeout | undefined;
  closing: boolean;
  /** When the watches were last opened (Date.now()). */
  watchesStartedAt: number;
  /** Set while the session is being recovered (see recover()); commands wait for it. */
  recovering: Promise<void> | undefined;
  /** Streams parked at the agents of our intercepts, for the current session id. */
  direct: DirectTunnels | undefined;
  /** Outbound access for this connection (off when the connect asked for none). */
  outbound: OutboundAccess | undefined;
}

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
  private session: Session | undefined;
  private connecting = false;
  private lastError = '';
  /** Our intercepts by spec.name. */
  private readonly intercepts = new Map<string, InterceptInfo>();
  /** Local ports of intercepts being created, so two concurrent intercepts cannot both take one. */
  private readonly pendingPorts = new Set<number>();
  /** Ids of our intercepts that a WatchIntercepts snapshot has shown. */
  private readonly seenIntercepts = new Set<string>();
  private agents: AgentInfo[] = [];
  private allIntercepts: InterceptInfo[] = [];
  private readonly listeners = new Set<(s: StateSnapshot) => void>();
  private readonly tunnels = new Set<Promise<void>>();
  /** Our intercepts that a recovery could not create again, by spec.name (see LostIntercept). */
  private readonly lost = new Map<string, LostIntercept>();
  /** Environment and mount of each of our intercepts, by spec.name. */
  private readonly remotes = new Map<string, Remote>();
  /** Intercepted connections received over direct tunnels and through the manager, this session. */
  private directConnections = 0;
  private relayedConnections = 0;

  constructor(deps: DaemonDeps) {
    this.deps = deps;
  }

  version(): VersionResponse {
    return { daemonVersion: this.deps.version, managerVersion: this.session?.managerVersion ?? '' };
  }

  status(): ConnectionStatus {
    const s = this.session;
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
      directConnections: this.directConnections,
      relayedConnections: this.relayedConnections,
      outbound: s === undefined ? undefined : (s.outbound?.status() ?? outboundOff()),
      lostIntercepts: [...this.lost.values()],
    };
  }

  snapshot(): StateSnapshot {
    return { connection: this.status(), intercepts: [...this.intercepts.values()], remotes: [...this.remotes.values()].map((r) => r.remote) };
  }

  /** Calls `listener` now and on every change; returns the unsubscribe function. */
  watchState(listener: (s: StateSnapshot) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot());
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    // Every change of agents or of our intercepts comes through here: park where they now are.
    this.session?.direct?.update(this.agents, [...this.intercepts.values()]);
    const snap = this.snapshot();
    for (const l of this.listeners) {
      l(snap);
    }
  }

  /** Connects, or returns the current connection when the flags match it. */
  async connect(args: ConnectArgs, progress: (line: string) => void = () => undefined): Promise<ConnectionStatus> {
    if (this.session !== undefined && sameArgs(this.session.args, args)) {
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
    this.directConnections = 0;
    this.relayedConnections = 0;
    try {
      const session = await this.openSession(args);
      this.session = session;
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

  private async openSession(args: ConnectArgs): Promise<Session> {
    const conn = await this.deps.connector(args.flags, args.managerNamespace);
    try {
      const mgr = conn.manager;
      const version = await unary(mgr.version.bind(mgr), {}, callOptions());
      checkManagerVersion(this.deps.version, version.version);
      const info = await this.arrive(conn, args);
      const session: Session = { args, conn, info, managerVersion: version.version, streams: [], watchesStartedAt: 0, heartbeat: undefined, closing: false, recovering: undefined, direct: undefined, outbound: undefined };
      this.startBackground(session);
      return session;
    } catch (err: unknown) {
      await conn.close();
      throw err;
    }
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

  /** ArriveAsClient; `resumeSessionId` asks to keep the id of a session that was lost. */
  private async arrive(conn: ManagerConnection, args: ConnectArgs, resumeSessionId = ''): Promise<SessionInfo> {
    const mgr = conn.manager;
    return unary(
      mgr.arriveAsClient.bind(mgr),
      { name: this.deps.clientName, installId: this.deps.installId, product: args.product, version: this.deps.version, resumeSessionId },
      callOptions(),
    );
  }

  private startBackground(s: Session): void {
    const seconds = s.info.heartbeatSeconds > 0 ? s.info.heartbeatSeconds : 5;
    s.heartbeat = setInterval(() => void this.heartbeat(s), seconds * 1000);
    this.startWatches(s);
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
        localPortOf: (id) => [...this.intercepts.values()].find((ii) => ii.id === id)?.spec?.localPort,
        log: this.deps.log,
        onConnection: () => this.directConnections++,
      });
    }
    const mgr = s.conn.manager;
    const agents = mgr.watchAgents(s.info);
    agents.on('data', (snap: AgentSnapshot) => {
      this.agents = snap.agents;
      this.emit();
    });
    const intercepts = mgr.watchIntercepts(s.info);
    intercepts.on('data', (snap: InterceptSnapshot) => {
      this.allIntercepts = snap.intercepts;
      const present = new Set(snap.intercepts.map((ii) => ii.id));
      for (const ii of snap.intercepts) {
        const name = ii.spec?.name ?? '';
        if (ii.clientSessionId === s.info.sessionId && this.intercepts.has(name)) {
          this.intercepts.set(name, ii);
          this.seenIntercepts.add(ii.id);
        }
      }
      // Removed on the manager's side (an agent uninstalled, an admin): forget it too. Only ids a
      // snapshot has shown before, so that a snapshot older than our CreateIntercept cannot drop one.
      for (const [name, ii] of this.intercepts) {
        if (this.seenIntercepts.has(ii.id) && !present.has(ii.id)) {
          this.deps.log('info', `intercept ${ii.id} was removed by the traffic-manager`);
          this.intercepts.delete(name);
          void this.dropRemote(name).then(() => this.emit());
          this.seenIntercepts.delete(ii.id);
        }
      }
      this.emit();
    });
    const dials = mgr.watchDials(s.info);
    dials.on('data', (dial: DialRequest) => this.dial(s, dial));
    const streams = [agents, intercepts, dials];
    for (const [name, stream] of [['WatchAgents', agents], ['WatchIntercepts', intercepts], ['WatchDials', dials]] as const) {
      stream.on('error', (err: Error) => this.watchEnded(s, streams, name, err));
      stream.on('end', () => this.watchEnded(s, streams, name, undefined));
    }
    s.streams = streams;
    s.watchesStartedAt = Date.now();
  }

  /** A watch ended: unless we cancelled it, the channel or the session is in trouble. */
  private watchEnded(s: Session, streams: Cancellable[], name: string, err: Error | undefined): void {
    if (s.closing || s.streams !== streams || this.session !== s) {
      return;
    }
    this.deps.log('warn', `${name} ended${err !== undefined ? `: ${err.message}` : ''}`);
    s.streams = [];
    for (const stream of streams) {
      stream.cancel();
    }
    // Watches that a live manager keeps ending are not re-opened in a tight loop.
    const wait = Math.max(0, s.watchesStartedAt + REWATCH_MIN_INTERVAL_MS - Date.now());
    setTimeout(() => void this.recover(s), wait).unref();
  }

  private dial(s: Session, dial: DialRequest): void {
    this.deps.log('debug', `dial ${dial.connectionId} from ${dial.source} to localhost:${dial.localPort}`);
    this.relayedConnections++;
    const mgr = s.conn.manager;
    const done = runTunnel(() => mgr.tunnel(), s.info.sessionId, dial, this.deps.log);
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
   * under the same id and creates this workstation's intercepts again. Retries with backoff until
   * it works or the session is closed; commands wait for it (see managerCall()).
   */
  private recover(s: Session): Promise<void> {
    s.recovering ??= this.recoverLoop(s).finally(() => {
      s.recovering = undefined;
      this.emit();
    });
    return s.recovering;
  }

  private async recoverLoop(s: Session): Promise<void> {
    let delay = RECOVERY_BACKOFF.initialMs;
    const started = Date.now();
    for (;;) {
      if (s.closing || this.session !== s) return;
      try {
        await this.recoverOnce(s);
        this.deps.log('info', `session ${s.info.sessionId} recovered in ${Date.now() - started} ms`);
        return;
      } catch (err: unknown) {
        if (s.closing || this.session !== s) return;
        this.lastError = `the traffic-manager cannot be reached; trying again: ${toTpError(err).message}`;
        this.deps.log('warn', this.lastError);
        this.emit();
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, RECOVERY_BACKOFF.maxMs);
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
    if (alive) {
      this.lastError = this.lostSummary();
      this.startWatches(s);
      this.emit();
      return;
    }
    // The manager does not know the session: arrive again, keeping the id when it can, so that
    // the intercepts, created again, keep theirs.
    const lostId = s.info.sessionId;
    s.info = await this.arrive(s.conn, s.args, lostId);
    this.deps.log('info', s.info.sessionId === lostId ? `arrived again as session ${lostId}` : `arrived again as session ${s.info.sessionId} (was ${lostId})`);
    // A snapshot taken before our intercepts exist again must not read as their removal.
    this.seenIntercepts.clear();
    this.startWatches(s);
    await this.restoreIntercepts(s);
    this.lastError = this.lostSummary();
    this.emit();
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
   * Creates this workstation's intercepts again on a manager that lost them, from the specs they
   * were made with: the agents and their configuration are still in the cluster, so no workload
   * restarts. Environments and mounts stay as they are. An intercept that cannot be made again
   * (its workload was deleted, say) is dropped and reported in `lostIntercepts`; a failure to
   * reach the manager is thrown, for the recovery to try again.
   */
  private async restoreIntercepts(s: Session): Promise<void> {
    for (const [name, old] of [...this.intercepts]) {
      const spec = old.spec;
      if (spec === undefined || this.intercepts.get(name) !== old) continue;
      try {
        const info = await this.prepareAndCreate(s, spec, (line) => this.deps.log('debug', `restoring ${name}: ${line}`), true);
        this.intercepts.set(name, info);
        this.deps.log('info', `intercept ${info.id} restored`);
        this.emit();
      } catch (err: unknown) {
        const e = toTpError(err);
        if (e.code === 'manager-unreachable' || grpcCodeOf(err) === grpcStatus.UNAVAILABLE) throw err;
        this.deps.log('warn', `intercept ${name} could not be restored: ${e.message}`);
        this.intercepts.delete(name);
        await this.dropRemote(name);
        this.lost.set(name, { name, reason: e.hint !== undefined && e.hint !== '' ? `${e.message} (${e.hint})` : e.message });
        this.emit();
      }
    }
  }

  /** The connection's error line while intercepts are lost, empty otherwise. */
  private lostSummary(): string {
    return this.lost.size === 0 ? '' : `intercepts lost after the traffic-manager restarted: ${[...this.lost.keys()].join(', ')}`;
  }

  /**
   * A manager call made for a command: waits for a recovery under way, and, when the channel
   * turns out to be dead, recovers and tries once more. So a command run just after the manager
   * was replaced waits for the new one instead of failing.
   */
  private async managerCall<T>(s: Session, call: (mgr: ManagerClient, session: SessionInfo) => Promise<T>, inRecovery = false): Promise<T> {
    // The recovery's own calls neither wait for it nor start it: it retries them itself.
    if (!inRecovery) await this.recovered(s);
    try {
      return await call(s.conn.manager, s.info);
    } catch (err: unknown) {
      const code = grpcCodeOf(err);
      const dead = code === grpcStatus.UNAVAILABLE && !answeredByManager(err);
      if (inRecovery || s.closing || (!dead && toTpError(err).code !== 'session-expired')) throw err;
      this.deps.log('info', `the traffic-manager call failed (${toTpError(err).message}); recovering the session first`);
      await this.recovered(s, this.recover(s));
      return call(s.conn.manager, s.info);
    }
  }

  /** Waits (bounded) for the session's recovery, if one is under way. */
  private async recovered(s: Session, recovery: Promise<void> | undefined = s.recovering): Promise<void> {
    if (recovery === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([recovery, new Promise((r) => (timer = setTimeout(r, RECOVERY_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private requireSession(): Session {
    if (this.session === undefined) {
      throw new TpError('user', 'not-connected', 'not connected to a cluster', { hint: 'run: kubectl telepresence connect' });
    }
    return this.session;
  }

  /** Departs and closes the connection; a no-op when not connected. */
  async disconnect(): Promise<void> {
    const s = this.session;
    if (s === undefined) {
      return;
    }
    s.closing = true;
    this.session = undefined;
    clearInterval(s.heartbeat);
    for (const stream of s.streams) {
      stream.cancel();
    }
    s.direct?.close();
    await s.outbound?.stop();
    try {
      const mgr = s.conn.manager;
      await unary(mgr.depart.bind(mgr), s.info, { deadline: deadlineIn(2_000) });
    } catch (err: unknown) {
      this.deps.log('warn', `depart failed: ${toTpError(err).message}`);
    }
    await Promise.all([...this.remotes.keys()].map((name) => this.dropRemote(name)));
    await s.conn.close();
    this.intercepts.clear();
    this.lost.clear();
    this.agents = [];
    this.allIntercepts = [];
    this.emit();
  }

  /** Workloads of a namespace, with their agent and intercepts. */
  async list(namespace: string): Promise<ListResponse> {
    const s = this.requireSession();
    const ns = namespace !== '' ? namespace : s.conn.target.namespace;
    const kube = s.conn.kube;
    const [deployments, replicaSets, statefulSets, configMap] = await Promise.all([
      kube.list<V1Deployment>('apps/v1', 'Deployment', { namespace: ns }),
      kube.list<V1ReplicaSet>('apps/v1', 'ReplicaSet', { namespace: ns }),
      kube.list<V1StatefulSet>('apps/v1', 'StatefulSet', { namespace: ns }),
      kube.get<V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: AGENTS_CONFIGMAP, namespace: ns }),
    ]);
    const configured = new Set(Object.keys(configMap?.data ?? {}));
    const workloads: WorkloadInfo[] = [];
    const add = (kind: string, name: string, ready: number, replicas: number): void => {
      const installed = this.agents.some((a) => a.namespace === ns && a.name === name);
      workloads.push({
        name,
        namespace: ns,
        kind,
        readyReplicas: ready,
        replicas,
        agentState: installed ? 'installed' : configured.has(name) ? 'configured' : 'none',
        intercepts: this.allIntercepts.filter((ii) => ii.spec?.namespace === ns && ii.spec.workloadName === name),
      });
    };
    for (const d of deployments) {
      add('Deployment', d.metadata?.name ?? '', d.status?.readyReplicas ?? 0, d.spec?.replicas ?? 1);
    }
    // A ReplicaSet managed by a Deployment is listed as its Deployment.
    for (const rs of replicaSets.filter((r) => !(r.metadata?.ownerReferences ?? []).some((o) => o.controller === true))) {
      add('ReplicaSet', rs.metadata?.name ?? '', rs.status?.readyReplicas ?? 0, rs.spec?.replicas ?? 1);
    }
    for (const ss of statefulSets) {
      add('StatefulSet', ss.metadata?.name ?? '', ss.status?.readyReplicas ?? 0, ss.spec?.replicas ?? 1);
    }
    workloads.sort((a, b) => a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
    return { workloads };
  }

  /**
   * Prepare (streaming `progress`), then create, then bring the container's environment (and, when
   * asked, its volumes) to the workstation; resolves with the created intercept, whose environment
   * and mount `remoteOf` then gives. A failure after create removes the intercept again.
   */
  async intercept(requested: InterceptSpec, progress: (line: string) => void, options: InterceptOptions = {}): Promise<InterceptInfo> {
    const s = this.requireSession();
    if (requested.workloadName === '') {
      throw new TpError('user', 'bad-usage', 'no workload given', { hint: 'kubectl telepresence intercept <workload> --port <local port>' });
    }
    if (!Number.isInteger(requested.localPort) || requested.localPort < 1 || requested.localPort > 65535) {
      throw new TpError('user', 'bad-port', `local port ${requested.localPort} is not a port number (1-65535)`, { hint: 'pass --port <local port>[:<service port>]' });
    }
    // A name becomes part of paths (the mount's temporary folder) and of the intercept's id:
    // Kubernetes' own rule for names that must be safe everywhere.
    if (requested.name !== '' && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(requested.name)) {
      throw new TpError('user', 'bad-intercept-name', `intercept name ${JSON.stringify(requested.name)} is not a DNS label`, {
        hint: 'pass --name with lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters',
      });
    }
    const namespace = requested.namespace !== '' ? requested.namespace : s.conn.target.namespace;
    const name = requested.name !== '' ? requested.name : `${requested.workloadName}-${namespace}`;
    if (this.intercepts.has(name)) {
      throw new TpError('user', 'intercept-exists', `there is already an intercept named ${name}`, { hint: `run \`kubectl telepresence leave ${name}\` first, or pass --name` });
    }
    const holder = [...this.intercepts.values()].find((ii) => ii.spec?.localPort === requested.localPort);
    if (holder !== undefined || this.pendingPorts.has(requested.localPort)) {
      throw new TpError('user', 'local-port-in-use', `local port ${requested.localPort} already receives intercept ${holder?.spec?.name ?? '(being created)'}`, {
        hint: holder !== undefined ? `choose another --port, or run \`kubectl telepresence leave ${holder.spec?.name ?? ''}\`` : 'choose another --port',
      });
    }
    // Every local input is checked before the cluster is touched: a file that cannot be written
    // found after the rollout would leave the workload restarted for nothing.
    for (const [flag, path] of [['--env-file', options.envFile], ['--env-json', options.envJson]] as const) {
      if (path !== undefined && path !== '') checkWritableFile(path, flag);
    }
    // Checked before the cluster is touched, so that a bad mount point changes nothing.
    let mountAt: PreparedMount | undefined;
    if (options.mount === true) {
      if (this.deps.mounter === undefined) throw new TpError('internal', 'mount-unavailable', 'this daemon cannot mount remote volumes', { hint: 'pass --mount=false' });
      mountAt = await this.deps.mounter.prepare(name, options.mountPoint);
    }
    const spec: InterceptSpec = { ...requested, name, namespace };
    this.pendingPorts.add(spec.localPort);
    this.lost.delete(name);
    let created = false;
    try {
      const info = await this.prepareAndCreate(s, spec, progress);
      this.intercepts.set(name, info);
      created = true;
      this.deps.log('info', `intercept ${info.id} created`);
      // Streams are parked at the agent while the environment and volumes come.
      s.direct?.update(this.agents, [...this.intercepts.values()]);
      const direct = s.direct?.ready(namespace, spec.workloadName, DIRECT_READY_WAIT_MS);
      const remote = await this.bringRemote(s, info, mountAt, options, progress);
      const path = (await direct) ?? { direct: false, reason: 'not connected' };
      if (!path.direct) this.deps.log('info', `intercept ${info.id}: connections are relayed by the traffic-manager (${path.reason})`);
      this.remotes.set(name, { ...remote, remote: { ...remote.remote, traffic: path.direct ? 'direct' : 'relayed', trafficReason: path.reason } });
      this.emit();
      return info;
    } catch (err: unknown) {
      if (created) {
        // Nothing half-applied: the intercept goes again when its environment or volumes fail.
        await this.leave(name).catch((e: unknown) => this.deps.log('warn', `removing intercept ${name} after a failure: ${toTpError(e).message}`));
      } else if (mountAt !== undefined) {
        this.deps.mounter?.release(mountAt);
      }
      throw err;
    } finally {
      this.pendingPorts.delete(spec.localPort);
    }
  }

  /** PrepareIntercept (streaming its progress), then CreateIntercept with the prepared spec. */
  private async prepareAndCreate(s: Session, spec: InterceptSpec, progress: (line: string) => void, inRecovery = false): Promise<InterceptInfo> {
    const prepared = await this.managerCall(s, async (mgr, session) => {
      const stream = mgr.prepareIntercept({ session, spec });
      let result: InterceptSpec | undefined;
      try {
        for await (const event of stream as AsyncIterable<{ progress?: string; prepared?: { spec?: InterceptSpec } }>) {
          if (event.progress !== undefined) {
            progress(event.progress);
          } else if (event.prepared !== undefined) {
            result = event.prepared.spec;
          }
        }
      } catch (err: unknown) {
        throw fromServiceError(err, { unavailable: managerUnavailable });
      }
      return result;
    }, inRecovery);
    if (prepared === undefined) {
      throw new TpError('internal', 'prepare-incomplete', `the traffic-manager ended the prepare of ${spec.name} without a result`);
    }
    return this.managerCall(s, (mgr, session) => unary(mgr.createIntercept.bind(mgr), { session, spec: prepared }, callOptions()), inRecovery);
  }

  /** The environment and mount of our intercept `name`, once it is set up. */
  remoteOf(name: string): InterceptRemote | undefined {
    return this.remotes.get(name)?.remote;
  }

  /** The container's environment from its agent, the volumes mounted, the files written. */
  private async bringRemote(s: Session, info: InterceptInfo, mountAt: PreparedMount | undefined, options: InterceptOptions, progress: (line: string) => void): Promise<Remote> {
    const name = info.spec?.name ?? '';
    const env = await this.fetchEnvironment(s, name);
    let mount: ActiveMount | undefined;
    if (mountAt !== undefined && this.deps.mounter !== undefined) {
      const mounter = this.deps.mounter;
      if (env.mounts.length === 0) {
        // Nothing to mount: the container has no volumes.
        mounter.release(mountAt);
      } else if (env.sftpPort === 0) {
        mounter.release(mountAt);
        throw new TpError('cluster', 'no-volume-server', `the traffic-agent of ${env.namespace}/${env.podName} does not serve the container's volumes`, {
          hint: `see its log (kubectl -n ${env.namespace} logs ${env.podName} -c traffic-agent), or pass --mount=false`,
        });
      } else {
        // The port-forward reports its own failure (e.g. no pods/portforward right in the
        // workload's namespace) apart from sshfs, which only sees the connection drop.
        let forwardError: string | undefined;
        const forward = await s.conn.kube.portForward(env.namespace, env.podName, env.sftpPort, (err) => {
          forwardError ??= err.message;
          this.deps.log('warn', `volume port-forward of ${name}: ${err.message}`);
        });
        try {
          mount = await mounter.mount(name, mountAt, env.mountRoot, forward.localPort, () => forward.close(), options.mountAllowOther === true);
        } catch (err: unknown) {
          await forward.close();
          mounter.release(mountAt);
          // The traffic is what an intercept is for: without the volumes it still works, so a
          // mount that fails in the cluster is reported, not fatal. (A bad mount point or a
          // missing sshfs was refused above, before the cluster was touched.)
          const reason = forwardError ?? toTpError(err).message;
          this.deps.log('warn', `intercept ${name} goes on without its volumes: ${reason}`);
          progress(`Volumes not mounted: ${reason}`);
          progress(`  (the intercept works without them; check pods/portforward rights in ${env.namespace}, or pass --mount=false)`);
        }
      }
    }
    try {
      const environment = localEnvironment(env.env, { interceptId: info.id, containerName: env.containerName, mountPoint: mount?.dir ?? '', mounts: env.mounts });
      const envFile = options.envFile ?? '';
      const envJson = options.envJson ?? '';
      // Secrets: readable by the user alone.
      if (envFile !== '') writeFileSync(envFile, formatDotenv(environment), { mode: 0o600 });
      if (envJson !== '') writeFileSync(envJson, formatEnvJson(environment), { mode: 0o600 });
      return { remote: { name, environment, mountPoint: mount?.dir ?? '', mounts: env.mounts, envFile, envJson, traffic: '', trafficReason: '' }, mount };
    } catch (err: unknown) {
      if (mount !== undefined) await this.deps.mounter?.unmount(mount);
      throw new TpError('user', 'env-file-unwritable', `cannot write the environment: ${(err as Error).message}`, { hint: 'check the --env-file / --env-json path', cause: err });
    }
  }

  /** GetInterceptEnvironment, waiting a little for an agent to be in session (it arrives after its pod is ready). */
  private async fetchEnvironment(s: Session, name: string): Promise<InterceptEnvironment> {
    const deadline = Date.now() + ENVIRONMENT_WAIT_MS;
    for (;;) {
      try {
        return await this.managerCall(s, (mgr, session) => unary(mgr.getInterceptEnvironment.bind(mgr), { session, name }, callOptions()));
      } catch (err: unknown) {
        if (toTpError(err).code !== 'no-agent' || Date.now() > deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, ENVIRONMENT_POLL_MS));
    }
  }

  /** Unmounts the intercept's volumes (if any) and forgets its environment. */
  private async dropRemote(name: string): Promise<void> {
    const r = this.remotes.get(name);
    if (r === undefined) return;
    this.remotes.delete(name);
    if (r.mount !== undefined) {
      try {
        await this.deps.mounter?.unmount(r.mount);
        this.deps.log('info', `unmounted the volumes of ${name} from ${r.mount.dir}`);
      } catch (err: unknown) {
        this.deps.log('warn', `unmounting ${r.mount.dir}: ${toTpError(err).message}`);
      }
    }
  }

  async leave(name: string): Promise<void> {
    const s = this.requireSession();
    if (!this.intercepts.has(name)) {
      const ours = [...this.intercepts.keys()];
      throw new TpError('user', 'unknown-intercept', `there is no intercept named ${name}`, {
        hint: ours.length > 0 ? `intercepts: ${ours.join(', ')}` : 'run `kubectl telepresence list` to see the intercepts',
      });
    }
    try {
      await this.managerCall(s, (mgr, session) => unary(mgr.removeIntercept.bind(mgr), { session, name }, callOptions()));
    } finally {
      // The local half goes whatever the manager says: a mount must not outlive `leave`.
      await this.dropRemote(name);
    }
    this.seenIntercepts.delete(this.intercepts.get(name)?.id ?? '');
    this.intercepts.delete(name);
    this.emit();
  }

  /** Removes agent configurations; `allNamespaces` (with `all`) reaches every namespace. */
  async uninstallAgents(req: { namespace: string; workloadNames: readonly string[]; all: boolean; allNamespaces: boolean }): Promise<UninstallAgentsResponse> {
    const s = this.requireSession();
    const { workloadNames, all } = req;
    if (!all && workloadNames.length === 0) {
      throw new TpError('user', 'bad-usage', 'no agents named', { hint: 'pass --agent <workload> or --all-agents' });
    }
    // The manager reads an empty namespace with `all` as every namespace.
    const ns = all && req.allNamespaces ? '' : req.namespace !== '' ? req.namespace : s.conn.target.namespace;
    return this.managerCall(s, (mgr, session) => unary(mgr.uninstallAgents.bind(mgr), { session, namespace: ns, workloadNames: [...workloadNames], all }, callOptions()));
  }

  /** Disconnects and waits (briefly) for tunnels to finish; the edge then stops the process. */
  async shutdown(): Promise<void> {
    await this.disconnect();
    await Promise.race([Promise.allSettled([...this.tunnels]), new Promise((r) => setTimeout(r, 1_000).unref())]);
    this.listeners.clear();
  }
}
