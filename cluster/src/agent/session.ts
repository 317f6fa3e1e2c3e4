import { credentials, Metadata, status, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import type { AgentInfo, InterceptInfo, ManagerClient, SessionInfo, VersionInfo } from '@telepresence-ts/proto/manager/v1';
import { TunnelManagerClient } from '@telepresence-ts/proto/manager/v1/tunnel';
import { Backoff, type BackoffPolicy } from '@telepresence-ts/core/backoff';
import { TUNNEL_CHANNEL_OPTIONS } from '@telepresence-ts/core/contracts';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { TunnelStream } from './tunnel-stream.js';

/**
 * Up to 0.5 s doubling to 2 s: a replaced manager is Ready within two or three seconds, and
 * intercepts resume only once every agent of the workload has arrived again, so no agent may
 * sleep long past that (the daemons' recovery has the same bounds).
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 2000 };

/** Used when the manager's SessionInfo names no heartbeat (the proto's documented default). */
const DEFAULT_HEARTBEAT_MS = 5000;
/** A unary call that takes longer than this is a manager we cannot rely on. */
const CALL_DEADLINE_MS = 10_000;
/**
 * Deadline of an arrival's first call (Version), which also opens the channel. A manager answers
 * it in milliseconds; a connect that went to the address of a manager pod that is gone (the
 * Service's rules not yet updated) is never answered, not even with a reset, and would hold the
 * arrival for the whole CALL_DEADLINE_MS. Failing fast gets a new channel (see `newClient`),
 * whose connect the Service routes afresh.
 */
export const ARRIVAL_DEADLINE_MS = 2_000;
/** Depart on stop is a courtesy to the manager (it would expire the session anyway); do not hold up a stop. */
const DEPART_DEADLINE_MS = 1000;

/**
 * A client for the manager at `address` ("host:port", plain text inside the cluster). grpc-js
 * would otherwise back off up to 2 minutes between reconnects; capping its backoff at the
 * session's keeps a restarted manager from going unnoticed for longer than our own retries.
 */
export function createManagerClient(address: string, backoff: BackoffPolicy = DEFAULT_BACKOFF): ManagerClient {
  return new TunnelManagerClient(address, credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': backoff.initialMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxMs,
    ...TUNNEL_CHANNEL_OPTIONS,
  });
}

export interface SessionOptions {
  readonly client: ManagerClient;
  /**
   * Makes a new client after an arrival failed for want of a connection. grpc-js has no connect
   * timeout: a connect that went to a manager pod that is gone (kube-proxy's conntrack entry
   * still pointing at it) hangs for minutes, and the channel waits for it. A new channel dials
   * afresh and reaches the manager's new pod.
   */
  readonly newClient?: () => ManagerClient;
  /** What the agent tells the manager about itself on every arrival. */
  readonly agent: AgentInfo;
  readonly log: Logger;
  /** Reconnect delays (core's Backoff); a session that lasted `maxMs` starts over. */
  readonly backoff?: BackoffPolicy;
  readonly clock?: Clock;
  /** Default ARRIVAL_DEADLINE_MS. */
  readonly arrivalDeadlineMs?: number;
}

/**
 * The traffic-agent's session with the traffic-manager: arrive, keep the session alive with
 * Remain at the manager's heartbeat, and follow the workload's intercepts (WatchIntercepts).
 *
 * Any failure (a failed call, the watch ending, Remain answering NOT_FOUND for an expired
 * session) drops the session and the intercept snapshot at once, so new connections go to the
 * app, and arrives again after a capped backoff. Nothing here is on the passthrough path.
 */
export class ManagerSession {
  #client: ManagerClient;
  readonly #newClient: (() => ManagerClient) | undefined;
  readonly #agent: AgentInfo;
  readonly #log: Logger;
  readonly #backoff: BackoffPolicy;
  readonly #clock: Clock;
  readonly #arrivalDeadlineMs: number;
  #session: SessionInfo | undefined;
  #intercepts: readonly InterceptInfo[] = [];
  #stopped = false;
  /** Ends the current session's wait (its watch and heartbeats). */
  #interrupt: (() => void) | undefined;
  /** Aborted by stop(): ends a backoff in progress. */
  readonly #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #arrivals = 0;
  /** Unary calls in flight, cancelled by stop() so that a stop never waits for a deadline. */
  readonly #calls = new Set<ClientUnaryCall>();

  constructor(options: SessionOptions) {
    this.#client = options.client;
    this.#newClient = options.newClient;
    this.#agent = options.agent;
    this.#log = options.log;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#clock = options.clock ?? systemClock;
    this.#arrivalDeadlineMs = options.arrivalDeadlineMs ?? ARRIVAL_DEADLINE_MS;
  }

  /** The client in use now (see `newClient`); the owner closes it after stop(). */
  get client(): ManagerClient {
    return this.#client;
  }

  /** The intercepts of the workload as of the manager's latest snapshot; empty without a session. */
  get intercepts(): readonly InterceptInfo[] {
    return this.#intercepts;
  }

  /** The traffic-manager pod's addresses, as the current session gave them; empty without one. */
  get managerPodIps(): readonly string[] {
    return this.#session?.managerPodIps ?? [];
  }

  /** The current session's id, undefined while not in session. */
  get sessionId(): string | undefined {
    return this.#session?.sessionId;
  }

  /** How many times the agent has arrived (a second arrival means a reconnect). */
  get arrivals(): number {
    return this.#arrivals;
  }

  /** Starts arriving (and re-arriving) in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops retrying, ends the streams and departs (best effort). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    this.#interrupt?.();
    for (const call of this.#calls) call.cancel();
    await this.#loop;
  }

  /**
   * Opens a Tunnel for one accepted connection to the owner of `interceptId`. Undefined when not
   * in session: the manager could not pair a tunnel from an agent it does not know.
   */
  openTunnel(interceptId: string, source: string, containerPort = 0): Duplex | undefined {
    const sessionId = this.#session?.sessionId;
    if (sessionId === undefined) return undefined;
    const connectionId = randomUUID();
    this.#log.debug('opening tunnel', { interceptId, connectionId, source });
    return new TunnelStream(this.#client.tunnel(), { sessionId, connectionId, interceptId, protocol: '', destination: '', containerPort });
  }

  async #run(): Promise<void> {
    const delays = new Backoff({ initialMs: this.#backoff.initialMs, maxMs: this.#backoff.maxMs, clock: this.#clock });
    while (!this.#stopped) {
      let arrived = false;
      let failure: unknown;
      try {
        await this.#arrive();
        arrived = true;
        delays.succeeded();
        await this.#serve();
      } catch (err: unknown) {
        failure = err;
        const code = (err as Partial<ServiceError>).code;
        if (!arrived && this.#newClient !== undefined && (code === status.DEADLINE_EXCEEDED || code === status.UNAVAILABLE)) {
          this.#client.close();
          this.#client = this.#newClient();
        }
      }
      const session = this.#session;
      this.#session = undefined;
      this.#setIntercepts([]);
      if (this.#stopped) {
        if (session !== undefined) await this.#depart(session);
        break;
      }
      const waited = delays.wait(this.#stopping.signal);
      this.#log.warn('no session with the traffic-manager; connections go to the app', { error: describe(failure), retryInMs: delays.lastDelayMs });
      if (!(await waited)) break;
    }
  }

  async #arrive(): Promise<void> {
    const version = await this.#unary<VersionInfo>((md, opts, cb) => this.#client.version({}, md, opts, cb), this.#arrivalDeadlineMs);
    const session = await this.#unary<SessionInfo>((md, opts, cb) => this.#client.arriveAsAgent(this.#agent, md, opts, cb));
    if (this.#stopped) {
      // stop() came while arriving: leave no session behind on the manager.
      await this.#depart(session);
      throw new Error('stopped');
    }
    this.#session = session;
    this.#arrivals++;
    this.#log.info('arrived at the traffic-manager', { sessionId: session.sessionId, managerVersion: version.version, heartbeatSeconds: session.heartbeatSeconds });
  }

  /** Follows intercepts and heartbeats until something fails (rejects) or stop() (resolves). */
  #serve(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return Promise.resolve();
    const heartbeatMs = session.heartbeatSeconds > 0 ? session.heartbeatSeconds * 1000 : DEFAULT_HEARTBEAT_MS;
    return new Promise<void>((resolve, reject) => {
      const watch = this.#client.watchIntercepts(session);
      let cancelTimer = (): void => {};
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        this.#interrupt = undefined;
        cancelTimer();
        watch.removeAllListeners('data');
        // The 'error' listener stays: cancel() makes the call emit CANCELLED, which must not throw.
        watch.cancel();
        if (err === undefined) resolve();
        else reject(err);
      };
      this.#interrupt = () => finish();
      watch.on('data', (snapshot: { intercepts: InterceptInfo[] }) => this.#setIntercepts(snapshot.intercepts));
      watch.on('error', (err: Error) => finish(err));
      watch.on('end', () => finish(new Error('the traffic-manager ended the intercept stream')));
      const beat = (): void => {
        cancelTimer = this.#clock.setTimer(heartbeatMs, () => {
          // The deadline makes a vanished manager (no RST, no FIN) show up within one heartbeat.
          this.#unary((md, opts, cb) => this.#client.remain(session, md, opts, cb), heartbeatMs).then(
            () => {
              if (!done) beat();
            },
            (err: unknown) => finish(err as Error),
          );
        });
      };
      beat();
    });
  }

  #setIntercepts(intercepts: readonly InterceptInfo[]): void {
    const key = (list: readonly InterceptInfo[]): string => list.map((ic) => `${ic.id}/${ic.disposition}`).join(',');
    if (key(intercepts) !== key(this.#intercepts)) {
      this.#log.info('intercepts', { intercepts: intercepts.map((ic) => ({ id: ic.id, disposition: ic.disposition, agentPort: ic.target?.agentPort })) });
    }
    this.#intercepts = intercepts;
  }

  async #depart(session: SessionInfo): Promise<void> {
    try {
      await this.#unary((md, opts, cb) => this.#client.depart(session, md, opts, cb), DEPART_DEADLINE_MS, false);
    } catch (err: unknown) {
      this.#log.debug('depart failed', { error: describe(err) });
    }
  }

  /** A unary call as a promise, with a deadline; `cancellable` ones are cancelled by stop(). */
  #unary<Res>(call: UnaryCall<Res>, deadlineMs = CALL_DEADLINE_MS, cancellable = true): Promise<Res> {
    return new Promise((resolve, reject) => {
      const handle = call(new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (err, res) => {
        this.#calls.delete(handle);
        if (err) reject(err);
        else resolve(res);
      });
      if (cancellable) this.#calls.add(handle);
    });
  }
}

type UnaryCall<Res> = (
  md: Metadata,
  options: { deadline: Date },
  callback: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;


function describe(err: unknown): string {
  const e = err as Partial<ServiceError>;
  if (typeof e.code === 'number') return `${status[e.code] ?? e.code}: ${e.details ?? e.message ?? ''}`;
  return err instanceof Error ? err.message : String(err);
}
