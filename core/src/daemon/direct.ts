/**
 * The daemon's end of direct tunnels (manager.proto, "Direct tunnels"): for every agent pod that
 * serves one of our intercepts, a few streams parked at the agent's `tunnel_port` through
 * port-forwards, so that the agent can hand us an intercepted connection without the manager's
 * relay. Each stream carries one connection; we park a new one as soon as one is taken.
 *
 * Nothing depends on this working: when a pod cannot be reached this way (no pods/portforward
 * right in its namespace, an agent without a tunnel port), the agent finds nothing parked and the
 * connection comes through the manager as before. Failures are retried with a backoff and
 * reported once per pod.
 */
import { Backoff, type BackoffPolicy } from '../backoff.js';
import { DirectStream, parseHeader } from '../direct-stream.js';
import type { AgentInfo, InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import type { Duplex } from 'node:stream';
import { splice, spliceSocketOptions } from '../splice.js';
import type { Logger } from './logger.js';
import { connectLocal, describeLocalDialError, LOCAL_HOST } from './local-dial.js';
import { serveCopies } from './copies.js';
import { takesTraffic } from '../engagement.js';

/**
 * Streams parked at each pod while it is quiet: enough for a browser's burst of parallel
 * connections; each is one port-forward stream.
 */
export const STREAMS_PER_POD = 4;
/**
 * The most parked at one pod, as many as an agent takes from one session. While connections
 * are open, a pool parks STREAMS_PER_POD more than the most it had in use at once lately, up to
 * this: a stream carries one connection and a new one takes a port-forward to open (milliseconds,
 * tens of them on a busy machine), so a burst of as many connections as the last one finds them
 * parked, and streams are opened that many at a time while connections come and go.
 */
export const MAX_STREAMS_PER_POD = 16;
/** A pool whose streams nobody took for this long parks STREAMS_PER_POD again (see MAX_STREAMS_PER_POD). */
export const SHRINK_MS = 30_000;
/**
 * How long streams stay parked at a pod after our last intercept of its workload ends: leaving
 * and intercepting again (a debug session that ends and restarts) then finds them ready.
 */
export const LINGER_MS = 30_000;
/** A parked stream that dies sooner than this counts as a failure (backoff), not as wear. */
const SHORT_LIVED_MS = 1000;

export interface DirectTunnelDeps {
  readonly sessionId: string;
  readonly openPodStream: (namespace: string, pod: string, port: number) => Promise<Duplex>;
  /**
   * The local port of our intercept `id` (for a replace, the one `containerPort` maps to);
   * undefined when it is not (or no longer) ours.
   */
  readonly localPortOf: (interceptId: string, containerPort?: number) => number | undefined;
  readonly log: Logger;
  /** Called for each connection received this way. */
  readonly onConnection?: () => void;
  /** Whether our intercept `id` is a wiretap, whose streams carry copies (core/src/copy-frames.ts). */
  readonly isWiretap?: (interceptId: string) => boolean;
  readonly streamsPerPod?: number;
  readonly maxStreamsPerPod?: number;
  readonly shrinkMs?: number;
  readonly lingerMs?: number;
  readonly backoff?: BackoffPolicy;
}

interface Pool {
  readonly namespace: string;
  readonly workload: string;
  readonly pod: string;
  readonly port: number;
  readonly idle: Set<DirectStream>;
  opening: number;
  /** Streams handed a connection that has not ended yet. */
  inUse: number;
  /** The most in use at once since the pool last shrank: what the next burst may need. */
  demand: number;
  /** Restarted by every handoff; when it fires, the pool goes back to parking what `inUse` needs. */
  shrink: NodeJS.Timeout | undefined;
  /** Delays between attempts to park streams again after they failed. */
  readonly backoff: Backoff;
  retry: NodeJS.Timeout | undefined;
  /** Set while no intercept of ours needs the pool (see LINGER_MS). */
  linger: NodeJS.Timeout | undefined;
  stopped: boolean;
  /** Whether the pod's last failure was reported (and not yet followed by a success). */
  reported: boolean;
  lastError: string;
}

/** Whether an intercept's connections take direct tunnels, and why not when they do not. */
export interface DirectReadiness {
  readonly direct: boolean;
  readonly reason: string;
}

export class DirectTunnels {
  readonly #deps: DirectTunnelDeps;
  readonly #pools = new Map<string, Pool>();
  readonly #size: number;
  readonly #max: number;
  readonly #shrinkMs: number;
  readonly #lingerMs: number;
  /** Idle streams closed on purpose (a pool shrinking): their end is no failure. */
  readonly #retired = new WeakSet<DirectStream>();
  readonly #backoff: BackoffPolicy;
  /** Checked whenever a pool parks, fails or goes (see ready()). */
  readonly #waiters = new Set<() => void>();

  constructor(deps: DirectTunnelDeps) {
    this.#deps = deps;
    this.#size = deps.streamsPerPod ?? STREAMS_PER_POD;
    this.#max = Math.max(this.#size, deps.maxStreamsPerPod ?? MAX_STREAMS_PER_POD);
    this.#shrinkMs = deps.shrinkMs ?? SHRINK_MS;
    this.#lingerMs = deps.lingerMs ?? LINGER_MS;
    this.#backoff = deps.backoff ?? { initialMs: 1000, maxMs: 60_000 };
  }

  get sessionId(): string {
    return this.#deps.sessionId;
  }

  /** Streams parked now at `namespace/pod` (for tests and status). */
  parked(namespace: string, pod: string): number {
    let n = 0;
    for (const p of this.#pools.values()) if (p.namespace === namespace && p.pod === pod) n += p.idle.size;
    return n;
  }

  /**
   * Resolves once every pod of `namespace/workload` has a stream parked (`direct`), or with why
   * not when one of them cannot have any or `timeoutMs` passes first; the first connections then
   * take the fast path. At once when no agent of the workload can take streams (none known, none
   * with a tunnel port): prepare answers only after the agent arrived, so the manager has already
   * sent it to us by then.
   */
  ready(namespace: string, workload: string, timeoutMs: number): Promise<DirectReadiness> {
    return new Promise((resolve) => {
      const check = (): void => {
        const pools = [...this.#pools.values()].filter((p) => p.namespace === namespace && p.workload === workload);
        const failed = pools.find((p) => p.reported);
        if (pools.length === 0) finish({ direct: false, reason: 'its agent takes no direct tunnels' });
        else if (failed !== undefined) finish({ direct: false, reason: failed.lastError });
        else if (pools.every((p) => p.idle.size > 0)) finish({ direct: true, reason: '' });
      };
      const timer = setTimeout(() => finish({ direct: false, reason: `no direct tunnel was ready within ${timeoutMs / 1000} s` }), timeoutMs);
      const finish = (r: DirectReadiness): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(r);
      };
      this.#waiters.add(check);
      check();
    });
  }

  #changed(): void {
    for (const check of [...this.#waiters]) check();
  }

  /** Parks streams at every agent pod that serves one of `ours`, and stops parking at the others. */
  update(agents: readonly AgentInfo[], ours: readonly InterceptInfo[]): void {
    const wanted = new Map<string, AgentInfo>();
    const present = new Set<string>();
    for (const agent of agents) {
      if (agent.tunnelPort <= 0) continue;
      const key = `${agent.namespace}/${agent.podName}:${agent.tunnelPort}`;
      present.add(key);
      // An ingest takes no traffic: no stream to park for it.
      if (ours.some((ic) => ic.spec?.namespace === agent.namespace && ic.spec.workloadName === agent.name && takesTraffic(ic.spec))) wanted.set(key, agent);
    }
    for (const [key, pool] of this.#pools) {
      if (wanted.has(key)) {
        clearTimeout(pool.linger);
        pool.linger = undefined;
      } else if (!present.has(key) || this.#lingerMs <= 0) {
        this.#stop(pool);
        this.#pools.delete(key);
      } else if (pool.linger === undefined) {
        pool.linger = setTimeout(() => {
          if (this.#pools.get(key) !== pool) return;
          this.#stop(pool);
          this.#pools.delete(key);
        }, this.#lingerMs);
        pool.linger.unref();
      }
    }
    for (const [key, agent] of wanted) {
      if (this.#pools.has(key)) continue;
      const pool: Pool = {
        namespace: agent.namespace,
        workload: agent.name,
        pod: agent.podName,
        port: agent.tunnelPort,
        idle: new Set(),
        opening: 0,
        inUse: 0,
        demand: 0,
        shrink: undefined,
        backoff: new Backoff(this.#backoff),
        retry: undefined,
        linger: undefined,
        stopped: false,
        reported: false,
        lastError: '',
      };
      this.#pools.set(key, pool);
      this.#fill(pool);
    }
    this.#changed();
  }

  /** Closes every parked stream; connections already handed over run to their end. */
  close(): void {
    for (const pool of this.#pools.values()) this.#stop(pool);
    this.#pools.clear();
  }

  #stop(pool: Pool): void {
    pool.stopped = true;
    clearTimeout(pool.retry);
    clearTimeout(pool.linger);
    clearTimeout(pool.shrink);
    for (const stream of pool.idle) stream.destroy();
    pool.idle.clear();
  }

  /** How many streams `pool` keeps parked now (see MAX_STREAMS_PER_POD). */
  #target(pool: Pool): number {
    return Math.min(this.#max, this.#size + pool.demand);
  }

  #fill(pool: Pool): void {
    while (!pool.stopped && pool.retry === undefined && pool.idle.size + pool.opening < this.#target(pool)) {
      this.#openOne(pool);
    }
  }

  /** A connection was handed over: the pool parks for as many at once as are in use now. */
  #handedOver(pool: Pool): void {
    pool.inUse++;
    pool.demand = Math.max(pool.demand, pool.inUse);
    clearTimeout(pool.shrink);
    pool.shrink = setTimeout(() => {
      pool.shrink = undefined;
      pool.demand = pool.inUse;
      // The oldest stay parked, the newest go.
      const extra = [...pool.idle].slice(this.#target(pool));
      for (const stream of extra) {
        this.#retired.add(stream);
        pool.idle.delete(stream);
        stream.destroy();
      }
    }, this.#shrinkMs);
    pool.shrink.unref();
  }

  #openOne(pool: Pool): void {
    pool.opening++;
    this.#deps.openPodStream(pool.namespace, pool.pod, pool.port).then(
      (raw) => {
        pool.opening--;
        if (pool.stopped) {
          raw.destroy();
          return;
        }
        this.#park(pool, raw);
      },
      (err: unknown) => {
        pool.opening--;
        this.#failed(pool, err as Error);
      },
    );
  }

  #park(pool: Pool, raw: Duplex): void {
    const stream = new DirectStream(raw);
    // A parked stream's error is its end (handled below); once in use, the splice reports them.
    stream.on('error', () => undefined);
    stream.sendHeader({ session: this.#deps.sessionId });
    pool.idle.add(stream);
    if (pool.reported) {
      pool.reported = false;
      this.#deps.log('info', `direct tunnels to ${pool.namespace}/${pool.pod} work again`);
    }
    this.#changed();
    const parkedAt = Date.now();
    stream.header.then(
      (bytes) => {
        pool.idle.delete(stream);
        pool.backoff.reset();
        const served = this.#serve(stream, bytes);
        if (served !== undefined) {
          this.#handedOver(pool);
          void served.then(() => pool.inUse--);
        }
        this.#fill(pool);
      },
      (err: unknown) => {
        pool.idle.delete(stream);
        if (pool.stopped || this.#retired.has(stream)) return;
        if (Date.now() - parkedAt < SHORT_LIVED_MS) this.#failed(pool, err as Error);
        else this.#fill(pool);
      },
    );
  }

  #failed(pool: Pool, err: Error): void {
    if (pool.stopped) return;
    pool.lastError = err.message;
    if (!pool.reported) {
      pool.reported = true;
      this.#deps.log('warn', `no direct tunnels to ${pool.namespace}/${pool.pod} (${err.message}); its intercepted connections go through the traffic-manager`);
      this.#changed();
    }
    if (pool.retry !== undefined) return;
    pool.retry = setTimeout(() => {
      pool.retry = undefined;
      this.#fill(pool);
    }, pool.backoff.next());
    pool.retry.unref();
  }

  /** Splices the connection `bytes` (the agent's handoff) announces; resolves when it ended. */
  #serve(stream: DirectStream, bytes: Buffer): Promise<void> | undefined {
    let interceptId: unknown;
    let source: unknown;
    let containerPort: unknown;
    try {
      ({ interceptId, source, containerPort } = parseHeader(bytes));
    } catch (err: unknown) {
      this.#deps.log('warn', `direct tunnel: ${(err as Error).message}`);
      stream.destroy();
      return undefined;
    }
    // A replace's agent says which of the container's ports the connection came to.
    const port = typeof containerPort === 'number' && Number.isInteger(containerPort) && containerPort > 0 ? containerPort : undefined;
    const localPort = typeof interceptId === 'string' ? this.#deps.localPortOf(interceptId, port) : undefined;
    if (localPort === undefined) {
      this.#deps.log('warn', `direct tunnel: a connection for ${String(interceptId)}, which is not one of our intercepts; closing it`);
      stream.destroy();
      return undefined;
    }
    if (typeof interceptId === 'string' && this.#deps.isWiretap?.(interceptId) === true) {
      this.#deps.log('debug', `direct tunnel: copies of wiretap ${interceptId} -> ${LOCAL_HOST}:${localPort}`);
      return serveCopies(stream, localPort, this.#deps.log);
    }
    const tag = `direct tunnel (${String(source)} -> ${LOCAL_HOST}:${localPort})`;
    this.#deps.log('debug', `${tag}: open`);
    this.#deps.onConnection?.();
    const socket = connectLocal(localPort, { allowHalfOpen: true, noDelay: true, ...spliceSocketOptions });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // The user's process not listening is worth a line of its own; splice reports the rest.
      if (err.code === 'ECONNREFUSED') this.#deps.log('warn', `${tag}: ${describeLocalDialError(err, localPort)}`);
    });
    return splice(socket, stream).then((result) => {
      this.#deps.log('debug', `${tag}: closed, ${result.aToB} bytes out, ${result.bToA} in${result.error !== undefined ? ` (${result.error.message})` : ''}`);
    });
  }
}
