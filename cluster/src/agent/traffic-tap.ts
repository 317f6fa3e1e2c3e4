/**
 * What the agent observes of a connection for the live traffic view (manager.proto, "Traffic"):
 * one event per connection for each engagement that takes part in it (the global intercept or
 * replace that takes it, the personal intercepts that route it, each wiretap that copies it),
 * and, while an engagement is watched, one event per HTTP/1 request (http-observer.ts).
 *
 * A connection that no engagement takes part in gets no tap at all, and one that nobody watches
 * is only counted: parsing is decided per connection, when it is accepted. h2c (and anything
 * else that is not HTTP/1) is reported per connection only.
 */
import type { InterceptInfo, TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import { unmappedAddress, type ConnectionTap, type TappedConnection, type TapSummary } from './forwarder.js';
import { Http1Observer, type ObservedExchange } from './http-observer.js';
import { personalIntercepts, wiretapsOn } from './routes.js';
import type { WiretapOutcome } from './wiretap.js';

export interface TrafficTapPorts {
  readonly podName: string;
  /** Queues an event for the manager (traffic-reporter.ts); returns at once. */
  readonly emit: (event: TrafficEvent) => void;
  /** Whether the engagement has watchers now (InterceptInfo.watchers); false once it is gone. */
  readonly watched: (interceptId: string) => boolean;
}

/**
 * "ip:port" as people write it: an IPv4 peer of a dual-stack listener without its `::ffff:`
 * prefix, an IPv6 one in brackets ("[fd00::7]:4321").
 */
export function plainSource(source: string): string {
  const colon = source.lastIndexOf(':');
  if (colon < 0 || source.startsWith('[')) return source;
  const host = unmappedAddress(source.slice(0, colon));
  return `${host.includes(':') ? `[${host}]` : host}${source.slice(colon)}`;
}

function baseEvent(interceptId: string, kind: 'tcp' | 'http', podName: string, source: string): TrafficEvent {
  return {
    interceptId,
    kind,
    startedAt: 0,
    durationMs: 0,
    podName,
    source: plainSource(source),
    answeredBy: 'app',
    bytesIn: 0,
    bytesOut: 0,
    method: '',
    path: '',
    status: 0,
    requestHeaders: [],
    responseHeaders: [],
    requestBody: Buffer.alloc(0),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
  };
}

/** One connection's observation; see `trafficTapFor`. */
export class TrafficTap implements ConnectionTap {
  readonly #connection: TappedConnection;
  /** Engagements that take or route the connection, reported when it closes. */
  readonly #takers: readonly string[];
  /** Wiretaps that copy it, reported when their copy is done (with what it dropped). */
  readonly #wiretaps: readonly string[];
  readonly #ports: TrafficTapPorts;
  #observer: Http1Observer | undefined;
  /** Where the personal intercepts' router sent each request, in order (undefined: the app). */
  readonly #routes: Array<string | undefined> = [];
  #toOwner = false;

  constructor(connection: TappedConnection, takers: readonly string[], wiretaps: readonly string[], ports: TrafficTapPorts, parse: { bodyBytes: number } | undefined) {
    this.#connection = connection;
    this.#takers = takers;
    this.#wiretaps = wiretaps;
    this.#ports = ports;
    if (parse !== undefined) this.#observer = new Http1Observer({ bodyBytes: parse.bodyBytes, onExchange: (ex) => this.#exchange(ex) });
  }

  /** The wiretaps that copy the connection. */
  get wiretapIds(): readonly string[] {
    return this.#wiretaps;
  }

  /** Whether it parses HTTP (someone watched when the connection came). */
  get parsing(): boolean {
    return this.#observer?.active ?? false;
  }

  fromCaller(piece: Uint8Array): void {
    if (this.#observer === undefined) return;
    try {
      this.#observer.fromCaller(piece);
    } catch {
      // Never on the data path's account: a bug of the observer costs only the request view.
      this.#observer = undefined;
    }
  }

  toCaller(piece: Uint8Array): void {
    if (this.#observer === undefined) return;
    try {
      this.#observer.toCaller(piece);
    } catch {
      this.#observer = undefined;
    }
  }

  routedTo(interceptId: string | undefined): void {
    this.#routes.push(interceptId);
    if (interceptId !== undefined) this.#toOwner = true;
  }

  closed(summary: TapSummary): void {
    try {
      this.#observer?.closed(summary.error);
    } catch {
      // As above.
    }
    this.#observer = undefined;
    for (const id of this.#takers) this.#ports.emit(this.#connectionEvent(id, summary, 0, summary.error));
  }

  /** A wiretap's copy of this connection is done: its event, with the bytes it dropped. */
  wiretapDone(outcome: WiretapOutcome): void {
    if (!this.#wiretaps.includes(outcome.interceptId)) return;
    this.#ports.emit(this.#connectionEvent(outcome.interceptId, outcome.connection, outcome.droppedBytes, outcome.connection.error));
  }

  /** Who answered the caller: the workstation when an owner took the connection (or, routed, any request of it). */
  #answeredBy(): string {
    if (this.#connection.interceptId !== undefined) return 'workstation';
    return this.#connection.routed && this.#toOwner ? 'workstation' : 'app';
  }

  #connectionEvent(id: string, summary: TapSummary, droppedBytes: number, error: string | undefined): TrafficEvent {
    const c = this.#connection;
    return {
      ...baseEvent(id, 'tcp', this.#ports.podName, c.source),
      startedAt: c.startedAt,
      durationMs: summary.durationMs,
      answeredBy: this.#answeredBy(),
      bytesIn: summary.bytesIn,
      bytesOut: summary.bytesOut,
      error: error ?? '',
      droppedBytes,
    };
  }

  #exchange(ex: ObservedExchange): void {
    const c = this.#connection;
    const answeredBy = c.interceptId !== undefined ? 'workstation' : c.routed && this.#routes[ex.index] !== undefined ? 'workstation' : 'app';
    for (const id of [...this.#takers, ...this.#wiretaps]) {
      if (!this.#ports.watched(id)) continue;
      this.#ports.emit({
        ...baseEvent(id, 'http', this.#ports.podName, c.source),
        startedAt: ex.startedAt,
        durationMs: ex.durationMs,
        answeredBy,
        bytesIn: ex.bytesIn,
        bytesOut: ex.bytesOut,
        method: ex.method,
        path: ex.path,
        status: ex.status,
        requestHeaders: ex.requestHeaders.map((h) => ({ name: h.name, value: h.value })),
        responseHeaders: ex.responseHeaders.map((h) => ({ name: h.name, value: h.value })),
        requestBody: ex.requestBody,
        responseBody: ex.responseBody,
        error: ex.error,
      });
    }
  }
}

/**
 * The tap of an accepted connection, or undefined when no engagement takes part in it (most
 * connections: then nothing at all is observed). It parses HTTP only when one of them is watched
 * now, keeping up to the largest body size a watcher asked for.
 */
export function trafficTapFor(intercepts: readonly InterceptInfo[], connection: TappedConnection, ports: TrafficTapPorts): TrafficTap | undefined {
  const takers = connection.interceptId !== undefined ? [connection.interceptId] : connection.routed ? personalIntercepts(intercepts, connection.route).map((p) => p.id) : [];
  const wiretaps = wiretapsOn(intercepts, connection.route).map((w) => w.id);
  if (takers.length === 0 && wiretaps.length === 0) return undefined;
  let parse: { bodyBytes: number } | undefined;
  for (const ic of intercepts) {
    if ((ic.watchers ?? 0) <= 0 || !(takers.includes(ic.id) || wiretaps.includes(ic.id))) continue;
    parse = { bodyBytes: Math.max(parse?.bodyBytes ?? 0, ic.watchBodyBytes ?? 0) };
  }
  return new TrafficTap(connection, takers, wiretaps, ports, parse);
}

/** How many connections may wait for their wiretap copies' outcome; past it the oldest are forgotten. */
const MAX_AWAITING_WIRETAPS = 10_000;

/**
 * The agent's traffic observation: a tap for each connection that engagements take part in (see
 * `trafficTapFor`), and the wiretap outcomes handed to the tap of their connection.
 */
export class AgentTraffic {
  readonly #intercepts: () => readonly InterceptInfo[];
  readonly #ports: TrafficTapPorts;
  /** Taps waiting for a wiretap's outcome, by wiretap, source and start. */
  readonly #awaiting = new Map<string, TrafficTap>();

  constructor(intercepts: () => readonly InterceptInfo[], podName: string, emit: (event: TrafficEvent) => void) {
    this.#intercepts = intercepts;
    this.#ports = {
      podName,
      emit,
      watched: (id) => (this.#intercepts().find((ic) => ic.id === id)?.watchers ?? 0) > 0,
    };
  }

  /** The taps of an accepted connection: none when no engagement takes part in it. */
  tapsFor(connection: TappedConnection): ConnectionTap[] {
    const tap = trafficTapFor(this.#intercepts(), connection, this.#ports);
    if (tap === undefined) return [];
    for (const id of tap.wiretapIds) {
      this.#awaiting.set(awaitingKey(id, connection.source, connection.startedAt), tap);
      if (this.#awaiting.size > MAX_AWAITING_WIRETAPS) {
        const [oldest] = this.#awaiting.keys();
        if (oldest !== undefined) this.#awaiting.delete(oldest);
      }
    }
    return [tap];
  }

  /** A wiretap's copy of a connection is done (wiretap.ts): the connection's event for that wiretap. */
  wiretapDone(outcome: WiretapOutcome): void {
    const key = awaitingKey(outcome.interceptId, outcome.source, outcome.startedAt);
    const tap = this.#awaiting.get(key);
    if (tap === undefined) return;
    this.#awaiting.delete(key);
    tap.wiretapDone(outcome);
  }
}

function awaitingKey(interceptId: string, source: string, startedAt: number): string {
  return `${interceptId} ${source} ${startedAt}`;
}
