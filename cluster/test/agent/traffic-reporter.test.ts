import t from 'tap';
import { EventEmitter } from 'node:events';
import { status } from '@grpc/grpc-js';
import type { ManagerClient, TrafficEvent, TrafficReport } from '@telepresence-ts/proto/manager/v1';
import { REPORT_BATCH, REPORT_INTERVAL_MS, REPORT_QUEUE_LIMIT, TrafficReporter } from '../../src/agent/traffic-reporter.js';
import { FakeClock } from '../shared/fake-clock.js';
import { memoryLogger } from './helpers.js';

/** A ReportTraffic stream that takes writes while `open`, then wants a 'drain'. */
class FakeStream extends EventEmitter {
  readonly reports: TrafficReport[] = [];
  ended = false;
  takes = true;
  constructor(readonly done: (err: { code: number; message: string } | null) => void) {
    super();
  }
  write(r: TrafficReport): boolean {
    this.reports.push(r);
    return this.takes;
  }
  end(): void {
    this.ended = true;
  }
}

function setUp() {
  const clock = new FakeClock();
  const streams: FakeStream[] = [];
  let session: string | undefined = 's1';
  const client = { reportTraffic: (cb: FakeStream['done']) => streams.push(new FakeStream(cb)) && streams.at(-1) } as unknown as ManagerClient;
  const reporter = new TrafficReporter({ client: () => client, sessionId: () => session, log: memoryLogger(), clock });
  return { clock, streams, reporter, setSession: (s: string | undefined) => (session = s) };
}

const ev = (n: number): TrafficEvent => ({ interceptId: 'c:web', kind: 'tcp', startedAt: n } as TrafficEvent);
const sent = (s: FakeStream | undefined) => (s?.reports ?? []).flatMap((r) => r.events.map((e) => e.startedAt));

t.test('events go in batches: after the interval, or at once when a batch is full', async (t) => {
  const { clock, streams, reporter } = setUp();
  reporter.add(ev(1));
  reporter.add(ev(2));
  t.equal(streams.length, 0, 'nothing before the interval');
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(streams.length, 1);
  t.strictSame(streams[0]?.reports.map((r) => [r.session?.sessionId, r.events.length]), [['s1', 2]], 'one batch, with the session');
  for (let i = 0; i < REPORT_BATCH; i++) reporter.add(ev(i));
  clock.advance(0);
  t.equal(streams[0]?.reports.length, 2, 'a full batch goes without waiting');
  t.equal(streams.length, 1, 'one stream per session');
});

t.test('a slow manager: nothing written until it drains; the oldest events go past the limit', async (t) => {
  const { clock, streams, reporter } = setUp();
  reporter.add(ev(0));
  clock.advance(REPORT_INTERVAL_MS);
  const s = streams[0]!;
  s.takes = false;
  reporter.add(ev(1));
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(s.reports.length, 2, 'the write that filled it');
  for (let i = 0; i < REPORT_QUEUE_LIMIT + 10; i++) reporter.add(ev(100 + i));
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(s.reports.length, 2, 'blocked: no more writes');
  t.equal(reporter.queued, REPORT_QUEUE_LIMIT);
  t.equal(reporter.dropped, 10);
  s.takes = true;
  s.emit('drain');
  clock.advance(0);
  t.equal(reporter.queued, 0);
  t.equal(sent(s)[2], 110, 'the oldest ten went');
});

t.test('a new session gets a new stream; none while out of session; an older manager is not asked again', async (t) => {
  const { clock, streams, reporter, setSession } = setUp();
  reporter.add(ev(1));
  clock.advance(REPORT_INTERVAL_MS);
  setSession(undefined);
  reporter.add(ev(2));
  clock.advance(REPORT_INTERVAL_MS * 3);
  t.equal(streams.length, 1, 'waiting for a session');
  setSession('s2');
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(streams.length, 2);
  t.ok(streams[0]?.ended, 'the old stream ended');
  t.strictSame(sent(streams[1]), [2], 'what waited goes on the new session');
  streams[1]?.done({ code: status.UNIMPLEMENTED, message: 'unknown method' });
  reporter.add(ev(3));
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(streams.length, 2, 'no new stream for a manager without ReportTraffic');
  setSession('s3');
  reporter.add(ev(4));
  clock.advance(REPORT_INTERVAL_MS);
  t.equal(streams.length, 3, 'a new session may have a newer manager');
  reporter.stop();
  t.ok(streams[2]?.ended);
  reporter.add(ev(5));
  t.equal(clock.pending, 0, 'stopped: no timers');
});
