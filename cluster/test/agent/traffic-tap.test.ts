import t from 'tap';
import type { InterceptInfo, TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import type { TappedConnection } from '../../src/agent/forwarder.js';
import { AgentTraffic, plainSource, trafficTapFor } from '../../src/agent/traffic-tap.js';
import { intercept } from './helpers.js';

const route: TappedConnection['route'] = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'app:http' };

function connection(over: Partial<TappedConnection> = {}): TappedConnection {
  return { route, source: '10.0.0.5:4321', startedAt: 1_000, interceptId: undefined, routed: false, ...over };
}

const personal = (id: string, watchers = 0, watchBodyBytes = 0): InterceptInfo => intercept(id, 9901, { spec: { ...intercept(id, 9901).spec!, headers: [{ name: 'x-user', value: 'me' }] }, watchers, watchBodyBytes });
const wiretap = (id: string, watchers = 0): InterceptInfo => intercept(id, 9901, { spec: { ...intercept(id, 9901).spec!, mode: 'wiretap' }, watchers });

function recorder(intercepts: () => readonly InterceptInfo[]) {
  const events: TrafficEvent[] = [];
  const ports = { podName: 'web-1', emit: (e: TrafficEvent) => void events.push(e), watched: (id: string) => (intercepts().find((ic) => ic.id === id)?.watchers ?? 0) > 0 };
  return { events, ports };
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

t.test('no engagement on the route: no tap at all', async (t) => {
  const { ports } = recorder(() => []);
  t.equal(trafficTapFor([], connection(), ports), undefined);
  t.equal(trafficTapFor([intercept('c:other', 7777)], connection(), ports), undefined, 'an intercept of another port');
});

t.test('a global intercept: one connection event, answered by the workstation; no parsing while unwatched', async (t) => {
  const ics = [intercept('c:web', 9901)];
  const { events, ports } = recorder(() => ics);
  const tap = trafficTapFor(ics, connection({ interceptId: 'c:web' }), ports);
  t.notOk(tap?.parsing, 'not watched: counted only');
  tap?.fromCaller(bytes('GET / HTTP/1.1\r\n\r\n'));
  tap?.toCaller(bytes('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  tap?.closed({ bytesIn: 18, bytesOut: 38, durationMs: 5, error: undefined });
  t.match(events, [{ interceptId: 'c:web', kind: 'tcp', startedAt: 1_000, durationMs: 5, podName: 'web-1', source: '10.0.0.5:4321', answeredBy: 'workstation', bytesIn: 18, bytesOut: 38, error: '' }]);
});

t.test('a routed connection: each request says where the router sent it; every watched engagement hears of it', async (t) => {
  const ics = [personal('c:mine', 1, 3), personal('d:theirs'), wiretap('e:tap', 1)];
  const { events, ports } = recorder(() => ics);
  const tap = trafficTapFor(ics, connection({ routed: true }), ports);
  t.ok(tap?.parsing, 'watched: parsed');
  tap?.fromCaller(bytes('GET /a HTTP/1.1\r\nx-user: me\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello'));
  tap?.routedTo('c:mine');
  tap?.routedTo(undefined);
  tap?.toCaller(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'));
  tap?.closed({ bytesIn: 90, bytesOut: 80, durationMs: 9, error: undefined });
  const http = events.filter((e) => e.kind === 'http');
  t.strictSame(
    http.map((e) => [e.interceptId, e.method, e.path, e.status, e.answeredBy]),
    [
      ['c:mine', 'GET', '/a', 200, 'workstation'],
      ['e:tap', 'GET', '/a', 200, 'workstation'],
      ['c:mine', 'POST', '/b', 201, 'app'],
      ['e:tap', 'POST', '/b', 201, 'app'],
    ],
    'd:theirs is not watched',
  );
  t.equal(http[2]?.requestBody.toString(), 'hel', 'the largest body a watcher asked for');
  t.strictSame(
    events.filter((e) => e.kind === 'tcp').map((e) => [e.interceptId, e.answeredBy]),
    [
      ['c:mine', 'workstation'],
      ['d:theirs', 'workstation'],
    ],
    'the personal intercepts each count the connection; the wiretap waits for its copy',
  );
});

t.test('wiretaps: their connection event comes with the copy’s outcome and what it dropped', async (t) => {
  const ics = [wiretap('e:tap')];
  const events: TrafficEvent[] = [];
  const traffic = new AgentTraffic(() => ics, 'web-1', (e) => events.push(e));
  const c = connection();
  const taps = traffic.tapsFor(c);
  t.equal(taps.length, 1);
  taps[0]?.closed?.({ bytesIn: 100, bytesOut: 50, durationMs: 3, error: undefined });
  t.strictSame(events, [], 'nothing before the copy is done');
  const summary = { bytesIn: 100, bytesOut: 50, durationMs: 3, error: undefined };
  traffic.wiretapDone({ interceptId: 'e:tap', source: c.source, startedAt: c.startedAt, copiedBytes: 60, droppedBytes: 40, problem: 'slow', connection: summary });
  traffic.wiretapDone({ interceptId: 'e:tap', source: c.source, startedAt: c.startedAt, copiedBytes: 60, droppedBytes: 40, problem: 'slow', connection: summary });
  t.match(events, [{ interceptId: 'e:tap', kind: 'tcp', answeredBy: 'app', bytesIn: 100, droppedBytes: 40 }]);
  t.equal(events.length, 1, 'once');
  t.strictSame(new AgentTraffic(() => [], 'web-1', () => undefined).tapsFor(c), []);
});

t.test('an observer that throws costs only the request view', async (t) => {
  const ics = [personal('c:mine', 1)];
  const { events, ports } = recorder(() => ics);
  const throwing = { ...ports, emit: (e: TrafficEvent) => (e.kind === 'http' ? (() => { throw new Error('boom'); })() : events.push(e)) };
  const tap = trafficTapFor(ics, connection({ routed: true }), throwing);
  t.doesNotThrow(() => {
    tap?.fromCaller(bytes('GET / HTTP/1.1\r\n\r\n'));
    tap?.toCaller(bytes('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    tap?.fromCaller(bytes('GET / HTTP/1.1\r\n\r\n'));
    tap?.closed({ bytesIn: 1, bytesOut: 1, durationMs: 1, error: undefined });
  });
  t.equal(events.length, 1, 'the connection is still counted');
});

t.test('sources read as people write them', async (t) => {
  t.equal(plainSource('::ffff:10.0.0.5:4321'), '10.0.0.5:4321', 'an IPv4 peer of a dual-stack listener');
  t.equal(plainSource('10.0.0.5:4321'), '10.0.0.5:4321');
  t.equal(plainSource('fd00::7:4321'), '[fd00::7]:4321', 'IPv6 in brackets');
  t.equal(plainSource('[fd00::7]:4321'), '[fd00::7]:4321');
});
