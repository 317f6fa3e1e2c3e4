/**
 * The agent's side of the traffic report (manager.proto, "Traffic"): events queue here and go to
 * the traffic-manager in batches over one ReportTraffic stream per session. Nothing here may slow
 * the data path: `add` only queues, the queue is bounded (the oldest events go first when the
 * manager is slow or away), and a stream the manager does not drain is not written to.
 */
import { status, type ClientWritableStream } from '@grpc/grpc-js';
import type { ManagerClient, TrafficEvent, TrafficReport } from '@telepresence-ts/proto/manager/v1';
import { systemClock, type Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';

/** A batch goes out this long after its first event, or at once when it is full. */
export const REPORT_INTERVAL_MS = 200;
export const REPORT_BATCH = 100;
/** Events waiting beyond this many make the oldest go. */
export const REPORT_QUEUE_LIMIT = 2_000;

export interface ReporterPorts {
  /** The manager client of the session now (it changes when the agent makes a new channel). */
  readonly client: () => ManagerClient;
  /** The session now; undefined while not in session (events wait, bounded). */
  readonly sessionId: () => string | undefined;
  readonly log: Logger;
  readonly clock?: Clock;
}

export class TrafficReporter {
  readonly #ports: ReporterPorts;
  readonly #clock: Clock;
  #queue: TrafficEvent[] = [];
  #cancelTimer: (() => void) | undefined;
  #stream: ClientWritableStream<TrafficReport> | undefined;
  #streamSession: string | undefined;
  /** The stream did not take the last batch at once: wait for its 'drain'. */
  #blocked = false;
  #dropped = 0;
  #stopped = false;
  /** The session whose manager answered UNIMPLEMENTED. */
  #refusedSession: string | undefined;

  constructor(ports: ReporterPorts) {
    this.#ports = ports;
    this.#clock = ports.clock ?? systemClock;
  }

  /** Events dropped so far because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events waiting to go. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues an event; it goes out with the next batch. Returns at once. */
  add(event: TrafficEvent): void {
    if (this.#stopped) return;
    this.#queue.push(event);
    if (this.#queue.length > REPORT_QUEUE_LIMIT) {
      const excess = this.#queue.length - REPORT_QUEUE_LIMIT;
      this.#queue.splice(0, excess);
      if (this.#dropped === 0) this.#ports.log.info('the traffic-manager takes traffic events slower than they come; dropping the oldest');
      this.#dropped += excess;
    }
    this.#schedule(this.#queue.length >= REPORT_BATCH ? 0 : REPORT_INTERVAL_MS);
  }

  /** Ends the stream; events still queued are not sent. */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#queue = [];
    this.#closeStream();
  }

  #schedule(ms: number): void {
    if (this.#cancelTimer !== undefined) {
      if (ms > 0) return;
      this.#cancelTimer();
    }
    this.#cancelTimer = this.#clock.setTimer(ms, () => {
      this.#cancelTimer = undefined;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#stopped || this.#queue.length === 0) return;
    const sessionId = this.#ports.sessionId();
    if (sessionId === undefined) {
      // Not in session: try again later (the queue stays bounded meanwhile).
      this.#schedule(REPORT_INTERVAL_MS);
      return;
    }
    if (sessionId === this.#refusedSession) {
      // A manager without ReportTraffic: nothing to send it this session.
      this.#queue = [];
      return;
    }
    const stream = this.#streamFor(sessionId);
    while (this.#queue.length > 0 && !this.#blocked) {
      const events = this.#queue.splice(0, REPORT_BATCH);
      const session = { sessionId, heartbeatSeconds: 0, expirySeconds: 0, managerPodIps: [] };
      if (!stream.write({ session, events })) {
        this.#blocked = true;
        stream.once('drain', () => {
          this.#blocked = false;
          if (this.#stream === stream) this.#schedule(0);
        });
      }
    }
  }

  /** The stream of this session: a new one for a new session (the old one ended). */
  #streamFor(sessionId: string): ClientWritableStream<TrafficReport> {
    if (this.#stream !== undefined && this.#streamSession === sessionId) return this.#stream;
    this.#closeStream();
    const stream = this.#ports.client().reportTraffic((err) => {
      if (this.#stream !== stream) return;
      // The manager refused the stream (its session ended, or it is older): a new one next time.
      this.#stream = undefined;
      this.#blocked = false;
      if (err?.code === status.UNIMPLEMENTED) {
        this.#refusedSession = sessionId;
        this.#ports.log.info('the traffic-manager takes no traffic reports (an older version)');
      } else if (err !== null) {
        this.#ports.log.debug('the traffic report stream ended', { error: err.message });
      }
    });
    this.#stream = stream;
    this.#streamSession = sessionId;
    this.#blocked = false;
    return stream;
  }

  #closeStream(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#streamSession = undefined;
    this.#blocked = false;
    if (stream !== undefined) stream.end();
  }
}
