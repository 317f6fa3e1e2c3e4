/**
 * The traffic-manager's state: sessions, intercepts, watchers, dial requests and tunnel pairing.
 * It imports neither grpc-js nor the Kubernetes client: the gRPC service (service.ts) translates
 * messages onto it, and tests drive it with a fake clock.
 */
import { takesOver } from '@telepresence-ts/core/engagement';
import { TpError } from '@telepresence-ts/core/errors';
import { describeHttpFilter, httpFilterKey, httpFilterProblem, isPersonal } from '@telepresence-ts/core/http-filter';
import { isReplace, replaceLocalPort } from '@telepresence-ts/core/engagement';
import {
  InterceptDisposition,
  type AgentInfo,
  type ClientInfo,
  type DialRequest,
  type InterceptEnvironment,
  type InterceptInfo,
  type InterceptSpec,
  type InterceptTarget,
  type SessionInfo,
  type TunnelOpen,
} from '@telepresence-ts/proto/manager/v1';
import { randomUUID } from 'node:crypto';
import type { Clock } from '../shared/clock.js';

/**
 * Session timing (ADR 0002): holders call Remain every 3 s and expire after 10 s of silence, so a
 * killed client's intercepts are gone (and its traffic back with the app) within 10 s, and
 * three heartbeats may be lost before a live session ends.
 */
export const HEARTBEAT_SECONDS = 3;
export const EXPIRY_SECONDS = 10;
/** How long an agent's tunnel waits for the owner's (ADR 0002 and manager.proto). */
export const TUNNEL_PAIR_TIMEOUT_MS = 10_000;

/** What a session id looks like (a UUID): a resumed id must be one, never a path or a name. */
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A stream subscriber: `next` gets a full snapshot on every change; `end` when its session ends. */
export interface Subscriber<T> {
  next(value: T): void;
  end(): void;
}

type Session =
  | { kind: 'client'; id: string; info: ClientInfo; cancelExpiry: () => void }
  | { kind: 'agent'; id: string; info: AgentInfo; cancelExpiry: () => void };

interface PendingTunnel {
  readonly connectionId: string;
  readonly agentSessionId: string;
  readonly clientSessionId: string;
  readonly handle: unknown;
  readonly resolve: (peer: unknown) => void;
  readonly reject: (err: TpError) => void;
  readonly cancelTimer: () => void;
}

interface StateOptions {
  /** Session ids; random UUIDs unless a test wants predictable ones. */
  readonly newId?: () => string;
}

/** The key two intercepts conflict on: the same app port of the same workload. */
function targetKey(spec: InterceptSpec, target: InterceptTarget): string {
  return `${spec.namespace}/${spec.workloadName}/${target.containerName}:${target.containerPort}`;
}

/**
 * '' for a global intercept; for a personal one its HTTP filter (headers, path prefix, methods)
 * as a key equal only for identical filters (header and method order and header-name case aside).
 */
function filterKey(spec: InterceptSpec): string {
  return isPersonal(spec) ? httpFilterKey(spec) : '';
}

function describeTarget(spec: InterceptSpec, target: InterceptTarget): string {
  const kind = spec.workloadKind === '' ? 'workload' : spec.workloadKind.toLowerCase();
  return `${kind}/${spec.workloadName} (namespace ${spec.namespace}, container ${target.containerName} port ${target.containerPort})`;
}

/**
 * A replace that holds a container: created, or being prepared (its entry may already be written,
 * and another client must not take the container in the meantime).
 */
interface HeldReplace {
  readonly sessionId: string;
  readonly clientName: string;
  readonly name: string;
  readonly namespace: string;
  readonly workloadName: string;
  readonly containerName: string;
}

/** Hears that a replace of the workload ended (removed, or its session gone): its entry may need its app back. */
export type ReplaceEnded = (namespace: string, workloadName: string) => void;

/** Ends (and forgets) the subscriptions a session holds. */
function endWatchersOf<T>(watchers: Map<Subscriber<T>, string>, sessionId: string): void {
  for (const [sub, owner] of watchers) {
    if (owner === sessionId) {
      watchers.delete(sub);
      sub.end();
    }
  }
}

/** The container a created replace holds; undefined for any other engagement. */
function heldReplaceOf(ic: InterceptInfo): HeldReplace | undefined {
  if (ic.spec === undefined || !isReplace(ic.spec)) return undefined;
  return {
    sessionId: ic.clientSessionId,
    clientName: ic.clientName,
    name: ic.spec.name,
    namespace: ic.spec.namespace,
    workloadName: ic.spec.workloadName,
    containerName: ic.target?.containerName ?? ic.spec.containerName,
  };
}

export class State {
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #sessions = new Map<string, Session>();
  /** Keyed by intercept id `<client session>:<name>`, in creation order. */
  readonly #intercepts = new Map<string, InterceptInfo>();
  readonly #agentWatchers = new Map<Subscriber<AgentInfo[]>, string>();
  readonly #interceptWatchers = new Map<Subscriber<InterceptInfo[]>, string>();
  readonly #dialWatchers = new Map<Subscriber<DialRequest>, string>();
  readonly #pending = new Map<string, PendingTunnel>();
  /** Called whenever the set of agents changes (prepare waits on it). */
  readonly #agentListeners = new Set<() => void>();
  /** Called whenever an intercept is created, removed or changed (traffic.ts forgets the removed). */
  readonly #interceptListeners = new Set<() => void>();

  /** Replaces being prepared, by `<client session>:<name>`, until created (or given up). */
  readonly #preparingReplaces = new Map<string, HeldReplace>();
  readonly #replaceListeners = new Set<ReplaceEnded>();

  constructor(clock: Clock, options: StateOptions = {}) {
    this.#clock = clock;
    this.#newId = options.newId ?? randomUUID;
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions

  /**
   * A client arrives. One that lost its session (this manager restarted, or the session expired)
   * names the old id and keeps it when no live session has it: its intercepts, created again,
   * keep their ids, and streams parked at agents under that session stay valid.
   */
  arriveAsClient(info: ClientInfo): SessionInfo {
    const resume = info.resumeSessionId;
    const id = SESSION_ID.test(resume) && !this.#sessions.has(resume) ? resume : this.#newId();
    this.#sessions.set(id, { kind: 'client', id, info, cancelExpiry: this.#armExpiry(id) });
    return this.#sessionInfo(id);
  }

  arriveAsAgent(info: AgentInfo): SessionInfo {
    const id = this.#newId();
    this.#sessions.set(id, { kind: 'agent', id, info, cancelExpiry: this.#armExpiry(id) });
    this.#agentsChanged();
    return this.#sessionInfo(id);
  }

  /** A heartbeat: restarts the session's expiry. `session-expired` when it is gone. */
  remain(sessionId: string): void {
    const s = this.#session(sessionId);
    s.cancelExpiry();
    s.cancelExpiry = this.#armExpiry(sessionId);
  }

  /** Ends a session now; unknown sessions are ignored (a depart after expiry is fine). */
  depart(sessionId: string): void {
    this.#end(sessionId);
  }

  /** The session's kind, or undefined when it is not (or no longer) in session. */
  sessionKind(sessionId: string): 'client' | 'agent' | undefined {
    return this.#sessions.get(sessionId)?.kind;
  }

  /** Throws `session-expired` for an unknown session, `not-a-client` for an agent's. */
  requireClient(sessionId: string): void {
    this.#client(sessionId);
  }

  /**
   * Every agent in session, in arrival order, without the app containers' environments: this is
   * what every client sees, and those hold secrets (see `interceptEnvironment`).
   */
  agents(): AgentInfo[] {
    return [...this.#sessions.values()].flatMap((s) => (s.kind === 'agent' ? [{ ...s.info, containers: [] }] : []));
  }

  /** Calls `listener` whenever agents arrive or leave; returns the unsubscribe function. */
  onAgentsChanged(listener: () => void): () => void {
    this.#agentListeners.add(listener);
    return () => this.#agentListeners.delete(listener);
  }

  #sessionInfo(id: string): SessionInfo {
    return { sessionId: id, heartbeatSeconds: HEARTBEAT_SECONDS, expirySeconds: EXPIRY_SECONDS, managerPodIps: [] };
  }

  #armExpiry(id: string): () => void {
    return this.#clock.setTimer(EXPIRY_SECONDS * 1000, () => this.#end(id));
  }

  /** The agent of the session: `session-expired` when unknown, `not-an-agent` for a client's. */
  requireAgent(sessionId: string): AgentInfo {
    const s = this.#session(sessionId);
    if (s.kind !== 'agent') throw new TpError('user', 'not-an-agent', `session ${sessionId} is a client's, not an agent's`);
    return s.info;
  }

  #session(sessionId: string): Session {
    const s = this.#sessions.get(sessionId);
    if (s === undefined) {
      throw new TpError('cluster', 'session-expired', `session ${sessionId} is not known to the traffic-manager (expired or never arrived)`, {
        hint: 'arrive again: the session timed out or the traffic-manager restarted',
      });
    }
    return s;
  }

  #client(sessionId: string): Session & { kind: 'client' } {
    const s = this.#session(sessionId);
    if (s.kind !== 'client') throw new TpError('user', 'not-a-client', `session ${sessionId} is an agent's, not a client's`);
    return s;
  }

  #end(sessionId: string): void {
    const s = this.#sessions.get(sessionId);
    if (s === undefined) return;
    s.cancelExpiry();
    this.#sessions.delete(sessionId);
    endWatchersOf(this.#agentWatchers, sessionId);
    endWatchersOf(this.#interceptWatchers, sessionId);
    endWatchersOf(this.#dialWatchers, sessionId);
    for (const p of this.#pending.values()) {
      if (p.agentSessionId === sessionId || p.clientSessionId === sessionId) {
        this.#failPending(p, new TpError('cluster', 'session-ended', `the ${s.kind} session of connection ${p.connectionId} ended`));
      }
    }
    if (s.kind === 'client') {
      // An expired client's intercepts go with it: the agent passes traffic to the app again.
      let removed = false;
      const ended: HeldReplace[] = [];
      for (const [id, ic] of this.#intercepts) {
        if (ic.clientSessionId === sessionId) {
          const held = heldReplaceOf(ic);
          if (held !== undefined) ended.push(held);
          this.#intercepts.delete(id);
          removed = true;
        }
      }
      for (const [key, held] of this.#preparingReplaces) {
        if (held.sessionId === sessionId) {
          this.#preparingReplaces.delete(key);
          ended.push(held);
        }
      }
      if (removed) this.#interceptsChanged();
      this.#replacesEnded(ended);
    } else {
      this.#agentsChanged();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Intercepts

  /**
   * Records an intercept in `WAITING` (or `ACTIVE` when an agent of the workload is in session).
   * `intercept-exists` when the client has one of that name; `intercept-conflict` when it would
   * take traffic another intercept takes: a global one (no HTTP filter) conflicts with any other on
   * the same target, personal ones conflict only with an identical filter (the same header set,
   * path prefix and method set; the agent sends a request that several others take to the most
   * specific, see `compareSpecificity`), and an ingest (which takes no traffic) with nothing.
   * `bad-http-filter` for a path prefix or a method that no request could carry.
   */
  createIntercept(sessionId: string, spec: InterceptSpec, target: InterceptTarget): InterceptInfo {
    const client = this.#client(sessionId);
    const id = `${sessionId}:${spec.name}`;
    if (this.#intercepts.has(id)) {
      throw new TpError('user', 'intercept-exists', `you already have an intercept named "${spec.name}"`, {
        hint: `leave it first (kubectl telepresence leave ${spec.name}) or choose another name`,
      });
    }
    const filterProblem = httpFilterProblem(spec);
    if (filterProblem !== undefined) {
      throw new TpError('user', 'bad-http-filter', `invalid HTTP filter: ${filterProblem}`, {
        hint: 'a path prefix starts with "/" and has no spaces, "?" or "#"; methods are upper-case HTTP tokens, e.g. --http-path-prefix /api/ --http-method GET',
      });
    }
    const replaceConflict = this.replaceConflict(sessionId, spec, target.containerName);
    if (replaceConflict !== undefined) throw replaceConflict;
    const key = targetKey(spec, target);
    const headers = filterKey(spec);
    // An ingest takes no traffic and a wiretap only a copy: they share the workload with any
    // engagement, and every engagement with them.
    const others = takesOver(spec) ? [...this.#intercepts.values()].filter((o) => o.spec !== undefined && takesOver(o.spec)) : [];
    for (const other of others) {
      if (other.spec === undefined || other.target === undefined || targetKey(other.spec, other.target) !== key) continue;
      const otherHeaders = filterKey(other.spec);
      if (headers === '' || otherHeaders === '' || headers === otherHeaders) {
        const holder = other.clientName;
        const theirs = describeHttpFilter(other.spec);
        let what: string;
        let hint: string;
        if (otherHeaders === '') {
          what = 'a global intercept';
          hint = `ask ${holder} to leave "${other.spec.name}": a global intercept takes every request of the port, so no other intercept can share it`;
        } else if (headers === '') {
          what = `a personal intercept for requests ${theirs}`;
          hint = `a global intercept would take ${holder}'s requests too; take only requests carrying your own header with --http-header <name>=<value>, or those of a path with --http-path-prefix <path>`;
        } else {
          what = `a personal intercept with the same filter, requests ${theirs}`;
          hint = `choose another filter: ${holder} already takes the requests ${theirs}; use other --http-header values or another --http-path-prefix`;
        }
        throw new TpError(
          'user',
          'intercept-conflict',
          `${describeTarget(spec, target)} is already intercepted by ${holder} (${what}, intercept "${other.spec.name}")`,
          { hint },
        );
      }
    }
    const info: InterceptInfo = {
      id,
      spec,
      target,
      clientSessionId: sessionId,
      clientName: client.info.name,
      disposition: InterceptDisposition.WAITING,
      message: '',
      createdAt: this.#clock.now(),
      stats: undefined,
      watchers: 0,
      watchBodyBytes: 0,
    };
    this.#intercepts.set(id, info);
    // Its prepare's hold becomes the replace itself.
    this.#preparingReplaces.delete(id);
    this.#interceptsChanged();
    return this.#withDisposition(info);
  }

  /** Removes the client's intercept `name`; `unknown-intercept` when it has none. */
  removeIntercept(sessionId: string, name: string): void {
    this.#client(sessionId);
    const ic = this.#intercepts.get(`${sessionId}:${name}`);
    if (!this.#intercepts.delete(`${sessionId}:${name}`)) {
      throw new TpError('user', 'unknown-intercept', `you have no intercept named "${name}"`, {
        hint: 'see your intercepts with `kubectl telepresence list`',
      });
    }
    this.#interceptsChanged();
    const held = ic === undefined ? undefined : heldReplaceOf(ic);
    this.#replacesEnded(held === undefined ? [] : [held]);
  }

  // ---------------------------------------------------------------------------------------------
  // Replaces: a replace holds a whole container, from its prepare (before anything in the cluster
  // changes) until it is removed or its session ends; then its workload's entry must get the
  // container back, which the listeners of `onReplaceEnded` see to.

  /**
   * The error an engagement must be refused with because of a replace, or undefined:
   * - a replace conflicts with every intercept and replace of the same container, whoever holds
   *   it (a replace takes all of the container's traffic, and its app is gone);
   * - an intercept of a container a replace holds (created or being prepared) is refused.
   * An ingest and a wiretap conflict with neither. The client's own replace of the same name being
   * prepared is not a conflict (that is its create).
   */
  replaceConflict(sessionId: string, spec: InterceptSpec, containerName: string): TpError | undefined {
    const mode = spec.mode ?? '';
    if (mode === 'ingest' || mode === 'wiretap') return undefined;
    const sameContainer = (h: { namespace: string; workloadName: string; containerName: string }): boolean =>
      h.namespace === spec.namespace && h.workloadName === spec.workloadName && h.containerName === containerName;
    const kind = spec.workloadKind === '' ? 'workload' : spec.workloadKind.toLowerCase();
    const where = `container ${containerName} of ${kind}/${spec.workloadName} (namespace ${spec.namespace})`;
    const ownId = `${sessionId}:${spec.name}`;
    const replaces = [
      ...[...this.#intercepts.values()].flatMap((ic) => {
        const held = heldReplaceOf(ic);
        return held === undefined ? [] : [held];
      }),
      ...[...this.#preparingReplaces.entries()].filter(([key]) => key !== ownId).map(([, held]) => held),
    ];
    const replacer = replaces.find(sameContainer);
    if (replacer !== undefined) {
      return new TpError('user', 'replace-conflict', `${where} is replaced by ${replacer.clientName} (replace "${replacer.name}"): its app is not running in the cluster`, {
        hint: `ask ${replacer.clientName} to leave "${replacer.name}"; until then every connection to the container goes to their workstation`,
      });
    }
    if (!isReplace(spec)) return undefined;
    const holder = [...this.#intercepts.values()].find(
      (ic) =>
        ic.spec !== undefined &&
        ic.id !== ownId &&
        ic.spec.mode !== 'ingest' &&
        ic.spec.mode !== 'wiretap' &&
        sameContainer({ namespace: ic.spec.namespace, workloadName: ic.spec.workloadName, containerName: ic.target?.containerName ?? '' }),
    );
    if (holder === undefined) return undefined;
    const port = holder.target === undefined ? '' : ` port ${holder.target.containerPort}`;
    return new TpError('user', 'replace-conflict', `${where} cannot be replaced: ${holder.clientName} intercepts its${port} (intercept "${holder.spec?.name ?? ''}")`, {
      hint: `a replace takes every port of the container; ask ${holder.clientName} to leave "${holder.spec?.name ?? ''}" first`,
    });
  }

  /**
   * Holds the container for the client's replace being prepared (the prepare calls this after
   * `replaceConflict`, before it writes): other clients' engagements of it are refused, and
   * `replacedContainers` names it. Held until the replace is created, `releaseReplace`, or the
   * session ends.
   */
  holdReplace(sessionId: string, spec: InterceptSpec, containerName: string): void {
    const client = this.#client(sessionId);
    this.#preparingReplaces.set(`${sessionId}:${spec.name}`, {
      sessionId,
      clientName: client.info.name,
      name: spec.name,
      namespace: spec.namespace,
      workloadName: spec.workloadName,
      containerName,
    });
  }

  /** Lets go of a replace being prepared that will not be created (its prepare failed). */
  releaseReplace(sessionId: string, name: string): void {
    const held = this.#preparingReplaces.get(`${sessionId}:${name}`);
    if (held === undefined) return;
    this.#preparingReplaces.delete(`${sessionId}:${name}`);
    this.#replacesEnded([held]);
  }

  /** The containers of the workload that replaces hold (created or being prepared), sorted. */
  replacedContainers(namespace: string, workloadName: string): string[] {
    const held = [...this.#intercepts.values()].flatMap((ic) => {
      const h = heldReplaceOf(ic);
      return h === undefined ? [] : [h];
    });
    const names = [...held, ...this.#preparingReplaces.values()]
      .filter((h) => h.namespace === namespace && h.workloadName === workloadName)
      .map((h) => h.containerName);
    return [...new Set(names)].sort();
  }

  /** Calls `listener` for each workload a replace of which ended; returns the unsubscribe function. */
  onReplaceEnded(listener: ReplaceEnded): () => void {
    this.#replaceListeners.add(listener);
    return () => this.#replaceListeners.delete(listener);
  }

  #replacesEnded(ended: readonly HeldReplace[]): void {
    const workloads = new Map(ended.map((h) => [`${h.namespace}/${h.workloadName}`, h]));
    for (const h of workloads.values()) for (const l of this.#replaceListeners) l(h.namespace, h.workloadName);
  }

  /**
   * The intercepted container's environment and mounts, for the intercept's owner only, from the
   * first agent of the workload in session. `unknown-intercept` when the client has no such
   * intercept; `no-agent` when no agent of the workload is in session.
   */
  interceptEnvironment(sessionId: string, name: string): InterceptEnvironment {
    this.#client(sessionId);
    const ic = this.#intercepts.get(`${sessionId}:${name}`);
    if (ic?.spec === undefined) {
      throw new TpError('user', 'unknown-intercept', `you have no intercept named "${name}"`, {
        hint: 'see your intercepts with `kubectl telepresence list`',
      });
    }
    const { namespace, workloadName } = ic.spec;
    const containerName = ic.target?.containerName ?? '';
    for (const s of this.#sessions.values()) {
      if (s.kind !== 'agent' || s.info.namespace !== namespace || s.info.name !== workloadName) continue;
      const c = s.info.containers.find((x) => x.name === containerName);
      return {
        namespace,
        podName: s.info.podName,
        containerName,
        env: { ...(c?.env ?? {}) },
        mountRoot: c?.mountRoot ?? '',
        mounts: [...(c?.mounts ?? [])],
        sftpPort: s.info.sftpPort,
      };
    }
    throw new TpError('cluster', 'no-agent', `no traffic-agent of ${namespace}/${workloadName} is connected to the traffic-manager`, {
      hint: `check the workload's pods (kubectl -n ${namespace} get pods) and try again`,
    });
  }

  /** The intercept `id` as kept (its disposition aside), or undefined when there is none. */
  interceptById(id: string): InterceptInfo | undefined {
    return this.#intercepts.get(id);
  }

  /**
   * Puts what traffic.ts keeps (stats, watchers) on intercept `id` and sends the snapshot; an
   * intercept that is gone is left alone.
   */
  setTraffic(id: string, fields: Partial<Pick<InterceptInfo, 'stats' | 'watchers' | 'watchBodyBytes'>>): void {
    const ic = this.#intercepts.get(id);
    if (ic === undefined) return;
    this.#intercepts.set(id, { ...ic, ...fields });
    this.#interceptsChanged();
  }

  /** Calls `listener` after every change of the intercepts; returns the unsubscribe function. */
  onInterceptsChanged(listener: () => void): () => void {
    this.#interceptListeners.add(listener);
    return () => this.#interceptListeners.delete(listener);
  }

  /** Every intercept, with its disposition as of now. */
  intercepts(): InterceptInfo[] {
    return [...this.#intercepts.values()].map((ic) => this.#withDisposition(ic));
  }

  /** ACTIVE while an agent of the intercepted workload is in session, else WAITING. */
  #withDisposition(ic: InterceptInfo): InterceptInfo {
    const served = this.agents().some((a) => a.namespace === ic.spec?.namespace && a.name === ic.spec.workloadName);
    return { ...ic, disposition: served ? InterceptDisposition.ACTIVE : InterceptDisposition.WAITING };
  }

  /** What a session sees: a client every intercept, an agent those of its workload. */
  #interceptsFor(sessionId: string): InterceptInfo[] {
    const s = this.#sessions.get(sessionId);
    const all = this.intercepts();
    if (s?.kind !== 'agent') return all;
    return all.filter((ic) => ic.spec?.namespace === s.info.namespace && ic.spec.workloadName === s.info.name);
  }

  // ---------------------------------------------------------------------------------------------
  // Watchers: each gets the current snapshot at once, then one on every change.

  watchAgents(sessionId: string, sub: Subscriber<AgentInfo[]>): () => void {
    this.#session(sessionId);
    this.#agentWatchers.set(sub, sessionId);
    sub.next(this.agents());
    return () => this.#agentWatchers.delete(sub);
  }

  watchIntercepts(sessionId: string, sub: Subscriber<InterceptInfo[]>): () => void {
    this.#session(sessionId);
    this.#interceptWatchers.set(sub, sessionId);
    sub.next(this.#interceptsFor(sessionId));
    return () => this.#interceptWatchers.delete(sub);
  }

  /** A client's dial requests (see `openTunnel`). */
  watchDials(sessionId: string, sub: Subscriber<DialRequest>): () => void {
    this.#client(sessionId);
    this.#dialWatchers.set(sub, sessionId);
    return () => this.#dialWatchers.delete(sub);
  }

  #agentsChanged(): void {
    const agents = this.agents();
    for (const sub of this.#agentWatchers.keys()) sub.next(agents);
    for (const l of this.#agentListeners) l();
    // Dispositions follow the agents.
    this.#interceptsChanged();
  }

  #interceptsChanged(): void {
    for (const [sub, sessionId] of this.#interceptWatchers) sub.next(this.#interceptsFor(sessionId));
    for (const l of this.#interceptListeners) l();
  }

  // ---------------------------------------------------------------------------------------------
  // Tunnels

  /**
   * Pairs the two Tunnel streams of one intercepted connection. `handle` is the caller's end (the
   * service passes its stream); the promise gives the peer's.
   *
   * The agent's call comes first: it must name an intercept of its workload; the owner is asked to
   * dial, and the promise waits up to 10 s for the owner's call (`dial-timeout` after). The
   * client's call must name a pending connection of one of its intercepts.
   */
  openTunnel<H>(open: TunnelOpen, handle: H): Promise<H> {
    try {
      const s = this.#session(open.sessionId);
      if (open.connectionId === '') throw new TpError('internal', 'bad-tunnel-open', 'the tunnel open message has no connection_id');
      return s.kind === 'agent' ? this.#openAgentSide(s, open, handle) : this.#openClientSide(s.id, open, handle);
    } catch (err: unknown) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Forgets a pending connection whose agent stream ended before the owner answered. */
  cancelTunnel(connectionId: string): void {
    const p = this.#pending.get(connectionId);
    if (p !== undefined) {
      p.cancelTimer();
      this.#pending.delete(connectionId);
    }
  }

  #openAgentSide<H>(agent: Session & { kind: 'agent' }, open: TunnelOpen, handle: H): Promise<H> {
    const ic = this.#intercepts.get(open.interceptId);
    if (ic === undefined || ic.spec?.namespace !== agent.info.namespace || ic.spec.workloadName !== agent.info.name) {
      throw new TpError('cluster', 'unknown-intercept', `no intercept "${open.interceptId}" of ${agent.info.namespace}/${agent.info.name}`);
    }
    if (this.#pending.has(open.connectionId)) {
      throw new TpError('internal', 'duplicate-connection', `connection ${open.connectionId} is already open`);
    }
    const spec = ic.spec;
    return new Promise<H>((resolve, reject) => {
      const pending: PendingTunnel = {
        connectionId: open.connectionId,
        agentSessionId: agent.id,
        clientSessionId: ic.clientSessionId,
        handle,
        resolve: resolve as (peer: unknown) => void,
        reject,
        cancelTimer: this.#clock.setTimer(TUNNEL_PAIR_TIMEOUT_MS, () =>
          this.#failPending(
            pending,
            new TpError('cluster', 'dial-timeout', `${ic.clientName} did not answer the dial of connection ${open.connectionId} within ${TUNNEL_PAIR_TIMEOUT_MS / 1000} s`),
          ),
        ),
      };
      this.#pending.set(open.connectionId, pending);
      // A replace's connection goes to the local port of the container port it came to (an agent
      // that names none came to the target's).
      const containerPort = open.containerPort !== undefined && open.containerPort > 0 ? open.containerPort : (ic.target?.containerPort ?? 0);
      const dial: DialRequest = {
        connectionId: open.connectionId,
        interceptId: ic.id,
        localPort: isReplace(spec) ? replaceLocalPort(spec, containerPort) : spec.localPort,
        source: agent.info.podIp === '' ? agent.info.podName : agent.info.podIp,
        // Absent for any other engagement (an optional field on the wire).
        ...(isReplace(spec) ? { containerPort } : {}),
      };
      for (const [sub, owner] of this.#dialWatchers) {
        if (owner === ic.clientSessionId) sub.next(dial);
      }
    });
  }

  #openClientSide<H>(clientSessionId: string, open: TunnelOpen, handle: H): Promise<H> {
    const p = this.#pending.get(open.connectionId);
    if (p === undefined || p.clientSessionId !== clientSessionId) {
      throw new TpError('cluster', 'unknown-connection', `connection ${open.connectionId} is not waiting for this client (timed out or closed)`);
    }
    p.cancelTimer();
    this.#pending.delete(open.connectionId);
    p.resolve(handle);
    return Promise.resolve(p.handle as H);
  }

  #failPending(p: PendingTunnel, err: TpError): void {
    p.cancelTimer();
    this.#pending.delete(p.connectionId);
    p.reject(err);
  }

  /** Ends every session (the manager is stopping): watchers end, pending tunnels fail. */
  close(): void {
    for (const id of [...this.#sessions.keys()]) this.#end(id);
  }
}
