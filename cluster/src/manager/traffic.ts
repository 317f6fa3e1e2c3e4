/**
 * The traffic-manager's side of the live traffic view (manager.proto, "Traffic"): the events that
 * agents report, kept per engagement in a bounded ring, passed on to the engagement's watchers,
 * and summed into `InterceptInfo.stats`. It also keeps `InterceptInfo.watchers` and
 * `watch_body_bytes` current, which is how agents learn to report HTTP requests (and how much of
 * each body). Like State, it imports no grpc-js.
 */
import { MAX_WATCH_BODY_BYTES } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import type { TrafficEvent, TrafficStats } from '@telepresence-ts/proto/manager/v1';
import type { Clock } from '../shared/clock.js';
import type { State } from './state.js';

/** How many events a new watcher gets first, per engagement (manager.proto WatchTraffic). */
export const TRAFFIC_RING_SIZE = 100;
/**
 * Stats reach InterceptInfo at most once a second: every change of an intercept sends a full
 * snapshot to every WatchIntercepts stream, and a busy engagement ends many connections a second.
 */
export const STATS_INTERVAL_MS = 1_000;

/** A WatchTraffic stream: `end` with an error when the engagement ended under it. */
export interface TrafficSubscriber {
  next(event: TrafficEvent): void;
  end(err?: TpError): void;
}

interface Watcher {
  readonly sub: TrafficSubscriber;
  readonly bodyBytes: number;
}

/** What the manager keeps of one engagement's traffic. */
interface Entry {
  readonly ring: TrafficEvent[];
  readonly watchers: Set<Watcher>;
  stats: TrafficStats;
  /** The stats changed since they were last put on the InterceptInfo. */
  statsDirty: boolean;
}

const zeroStats = (): TrafficStats => ({ connections: 0, requests: 0, droppedConnections: 0, droppedBytes: 0 });

/** The event as a watcher that asked for `bodyBytes` of each body sees it. */
function forWatcher(e: TrafficEvent, bodyBytes: number): TrafficEvent {
  if (e.requestBody.length <= bodyBytes && e.responseBody.length <= bodyBytes) return e;
  return { ...e, requestBody: e.requestBody.subarray(0, bodyBytes), responseBody: e.responseBody.subarray(0, bodyBytes) };
}

/** What the traffic module needs of the State. */
export type TrafficState = Pick<State, 'requireAgent' | 'requireClient' | 'interceptById' | 'setTraffic' | 'onInterceptsChanged'>;

export class Traffic {
  readonly #state: TrafficState;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  #cancelFlush: (() => void) | undefined;

  constructor(state: TrafficState, clock: Clock) {
    this.#state = state;
    this.#clock = clock;
    state.onInterceptsChanged(() => this.#dropRemoved());
  }

  /**
   * An agent's batch. The session must be an agent's in session (`session-expired`,
   * `not-an-agent`); events of intercepts that are gone, or not of the agent's workload, are
   * dropped without a word (an intercept may end while its connections' events are on the way).
   */
  report(sessionId: string, events: readonly TrafficEvent[]): void {
    const agent = this.#state.requireAgent(sessionId);
    for (const e of events) {
      const ic = this.#state.interceptById(e.interceptId);
      if (ic?.spec?.namespace !== agent.namespace || ic.spec.workloadName !== agent.name) continue;
      const event = e.podName === '' ? { ...e, podName: agent.podName } : e;
      const entry = this.#entry(e.interceptId);
      entry.ring.push(event);
      if (entry.ring.length > TRAFFIC_RING_SIZE) entry.ring.shift();
      this.#count(entry, event);
      for (const w of entry.watchers) w.sub.next(forWatcher(event, w.bodyBytes));
    }
    this.#scheduleFlush();
  }

  /**
   * A client watches an engagement: first the kept events, then each as it comes, until the
   * returned function is called or the engagement ends (`end` with `intercept-ended`).
   * `unknown-intercept` when there is no such engagement.
   */
  watch(sessionId: string, interceptId: string, bodyBytes: number, sub: TrafficSubscriber): () => void {
    this.#state.requireClient(sessionId);
    if (this.#state.interceptById(interceptId) === undefined) {
      throw new TpError('user', 'unknown-intercept', `there is no intercept "${interceptId}"`, { hint: 'see the intercepts with `kubectl telepresence list`' });
    }
    const w: Watcher = { sub, bodyBytes: Math.max(0, Math.min(bodyBytes, MAX_WATCH_BODY_BYTES)) };
    const entry = this.#entry(interceptId);
    for (const e of entry.ring) sub.next(forWatcher(e, w.bodyBytes));
    entry.watchers.add(w);
    this.#publishWatchers(interceptId, entry);
    return () => {
      if (entry.watchers.delete(w) && this.#entries.get(interceptId) === entry) this.#publishWatchers(interceptId, entry);
    };
  }

  /** Ends every watch (the manager is stopping). */
  close(): void {
    this.#cancelFlush?.();
    this.#cancelFlush = undefined;
    for (const entry of this.#entries.values()) for (const w of entry.watchers) w.sub.end();
    this.#entries.clear();
  }

  #entry(id: string): Entry {
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      entry = { ring: [], watchers: new Set(), stats: zeroStats(), statsDirty: false };
      this.#entries.set(id, entry);
    }
    return entry;
  }

  #count(entry: Entry, e: TrafficEvent): void {
    const s = entry.stats;
    if (e.kind === 'tcp') {
      s.connections += 1;
      if (e.droppedBytes > 0) {
        s.droppedConnections += 1;
        s.droppedBytes += e.droppedBytes;
      }
    } else if (e.kind === 'http') {
      s.requests += 1;
    } else {
      return;
    }
    entry.statsDirty = true;
  }

  /** Watchers change at once: an agent starts or stops reporting requests on it. */
  #publishWatchers(id: string, entry: Entry): void {
    let body = 0;
    for (const w of entry.watchers) body = Math.max(body, w.bodyBytes);
    this.#state.setTraffic(id, { watchers: entry.watchers.size, watchBodyBytes: body });
  }

  #scheduleFlush(): void {
    if (this.#cancelFlush !== undefined) return;
    this.#cancelFlush = this.#clock.setTimer(STATS_INTERVAL_MS, () => {
      this.#cancelFlush = undefined;
      for (const [id, entry] of this.#entries) {
        if (!entry.statsDirty) continue;
        entry.statsDirty = false;
        this.#state.setTraffic(id, { stats: { ...entry.stats } });
      }
    });
  }

  /** Engagements that are gone: their events go, and their watchers are told. */
  #dropRemoved(): void {
    for (const [id, entry] of this.#entries) {
      if (this.#state.interceptById(id) !== undefined) continue;
      this.#entries.delete(id);
      const name = id.slice(id.indexOf(':') + 1);
      for (const w of entry.watchers) {
        w.sub.end(new TpError('user', 'intercept-ended', `the intercept "${name}" ended`, { hint: 'watch it again once it is back (kubectl telepresence list shows the intercepts)' }));
      }
    }
  }
}

