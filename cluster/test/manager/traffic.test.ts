import type { AgentInfo, InterceptInfo, InterceptSpec, InterceptTarget, TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import t from 'tap';
import type { TpError } from '@telepresence-ts/core/errors';
import { State, type Subscriber } from '../../src/manager/state.js';
import { STATS_INTERVAL_MS, TRAFFIC_RING_SIZE, Traffic, type TrafficSubscriber } from '../../src/manager/traffic.js';
import { FakeClock } from '../shared/fake-clock.js';

const client = (name: string) => ({ name, installId: `id-${name}`, product: 'cli', version: '0.1.0', resumeSessionId: '' });
const agentInfo = (name = 'web', podName = `${name}-abc`): AgentInfo => ({
  name,
  namespace: 'default',
  podName,
  podIp: '10.0.0.7',
  version: '0.1.0',
  kind: 'Deployment',
  containers: [],
  sftpPort: 0,
  tunnelPort: 0,
});

const spec = (over: Partial<InterceptSpec> = {}): InterceptSpec => ({
  name: 'web-default',
  namespace: 'default',
  workloadName: 'web',
  workloadKind: 'Deployment',
  serviceName: 'web',
  servicePort: 'http',
  containerName: 'app',
  localPort: 8080,
  headers: [],
  httpPathPrefix: '',
  httpMethods: [],
  mode: '',
  ports: [],
  ...over,
});

const target: InterceptTarget = {
  serviceName: 'web',
  serviceUid: 'uid',
  servicePortName: 'http',
  servicePort: 80,
  protocol: 'TCP',
  containerName: 'app',
  containerPort: 8080,
  agentPort: 9901,
  sharedWith: [],
};

function event(interceptId: string, over: Partial<TrafficEvent> = {}): TrafficEvent {
  return {
    interceptId,
    kind: 'tcp',
    startedAt: 1,
    durationMs: 2,
    podName: '',
    source: '10.0.0.5:4321',
    answeredBy: 'workstation',
    bytesIn: 10,
    bytesOut: 20,
    method: '',
    path: '',
    status: 0,
    requestHeaders: [],
    responseHeaders: [],
    requestBody: Buffer.alloc(0),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
    ...over,
  };
}

function recorder(): TrafficSubscriber & { events: TrafficEvent[]; ended: boolean; error: TpError | undefined } {
  const r = {
    events: [] as TrafficEvent[],
    ended: false,
    error: undefined as TpError | undefined,
    next: (e: TrafficEvent) => void r.events.push(e),
    end: (err?: TpError) => {
      r.ended = true;
      r.error = err;
    },
  };
  return r;
}

function snapshots(): Subscriber<InterceptInfo[]> & { values: InterceptInfo[][] } {
  const r = { values: [] as InterceptInfo[][], next: (v: InterceptInfo[]) => void r.values.push(v), end: () => undefined };
  return r;
}

function setUp() {
  const clock = new FakeClock();
  let n = 0;
  const state = new State(clock, { newId: () => `s${++n}` });
  const traffic = new Traffic(state, clock);
  const alice = state.arriveAsClient(client('alice')).sessionId;
  const bob = state.arriveAsClient(client('bob')).sessionId;
  const agent = state.arriveAsAgent(agentInfo()).sessionId;
  const id = state.createIntercept(alice, spec(), target).id;
  return { clock, state, traffic, alice, bob, agent, id };
}

t.test('a watcher gets the kept events first, then each as it comes, with the pod filled in', async (t) => {
  const { traffic, bob, agent, id } = setUp();
  traffic.report(agent, [event(id, { startedAt: 1 }), event(id, { startedAt: 2, podName: 'web-xyz' })]);
  const r = recorder();
  traffic.watch(bob, id, 0, r);
  traffic.report(agent, [event(id, { startedAt: 3 })]);
  t.strictSame(
    r.events.map((e) => [e.startedAt, e.podName]),
    [
      [1, 'web-abc'],
      [2, 'web-xyz'],
      [3, 'web-abc'],
    ],
  );
});

t.test(`the ring keeps the last ${TRAFFIC_RING_SIZE} events of each intercept`, async (t) => {
  const { traffic, bob, agent, id } = setUp();
  traffic.report(
    agent,
    Array.from({ length: TRAFFIC_RING_SIZE + 5 }, (_, i) => event(id, { startedAt: i })),
  );
  const r = recorder();
  traffic.watch(bob, id, 0, r);
  t.equal(r.events.length, TRAFFIC_RING_SIZE);
  t.equal(r.events[0]?.startedAt, 5, 'the oldest went first');
});

t.test('events of unknown intercepts, or of another workload’s, are dropped', async (t) => {
  const { state, traffic, alice, bob, agent, id } = setUp();
  const other = state.createIntercept(alice, spec({ name: 'db', workloadName: 'db' }), target).id;
  const r = recorder();
  const rOther = recorder();
  traffic.watch(bob, id, 0, r);
  traffic.watch(bob, other, 0, rOther);
  traffic.report(agent, [event('s1:nope'), event(other), event(id)]);
  t.equal(r.events.length, 1);
  t.equal(rOther.events.length, 0, 'the web agent cannot report for db');
});

t.test('sessions are checked: reports come from agents, watches from clients', async (t) => {
  const { traffic, alice, agent, id } = setUp();
  t.throws(() => traffic.report(alice, [event(id)]), { code: 'not-an-agent' });
  t.throws(() => traffic.report('gone', [event(id)]), { code: 'session-expired' });
  t.throws(() => traffic.watch(agent, id, 0, recorder()), { code: 'not-a-client' });
  t.throws(() => traffic.watch(alice, 's1:nope', 0, recorder()), { code: 'unknown-intercept', category: 'user' });
});

t.test('watchers and the largest body asked for are on the InterceptInfo at once', async (t) => {
  const { state, traffic, alice, bob, agent, id } = setUp();
  const agentView = snapshots();
  state.watchIntercepts(agent, agentView);
  const stopA = traffic.watch(alice, id, 0, recorder());
  t.match(agentView.values.at(-1)?.[0], { watchers: 1, watchBodyBytes: 0 });
  const stopB = traffic.watch(bob, id, 512, recorder());
  t.match(agentView.values.at(-1)?.[0], { watchers: 2, watchBodyBytes: 512 });
  stopB();
  t.match(agentView.values.at(-1)?.[0], { watchers: 1, watchBodyBytes: 0 });
  stopA();
  stopA();
  t.match(agentView.values.at(-1)?.[0], { watchers: 0 });
});

t.test('each watcher sees bodies only up to what it asked for', async (t) => {
  const { traffic, alice, bob, agent, id } = setUp();
  const none = recorder();
  const some = recorder();
  traffic.watch(alice, id, 0, none);
  traffic.watch(bob, id, 4, some);
  traffic.report(agent, [event(id, { kind: 'http', requestBody: Buffer.from('hello world'), responseBody: Buffer.from('ok') })]);
  t.equal(none.events[0]?.requestBody.length, 0);
  t.equal(some.events[0]?.requestBody.toString(), 'hell');
  t.equal(some.events[0]?.responseBody.toString(), 'ok');
});

t.test('stats sum the events and reach the InterceptInfo at most once a second', async (t) => {
  const { clock, state, traffic, agent, id } = setUp();
  const view = snapshots();
  state.watchIntercepts(agent, view);
  const before = view.values.length;
  traffic.report(agent, [event(id), event(id, { droppedBytes: 100 })]);
  traffic.report(agent, [event(id, { kind: 'http' }), event(id, { droppedBytes: 5 })]);
  t.equal(view.values.length, before, 'no snapshot before the interval');
  clock.advance(STATS_INTERVAL_MS);
  t.equal(view.values.length, before + 1, 'one snapshot for both batches');
  t.strictSame(state.interceptById(id)?.stats, { connections: 3, requests: 1, droppedConnections: 2, droppedBytes: 105 });
  clock.advance(STATS_INTERVAL_MS * 5);
  t.equal(view.values.length, before + 1, 'nothing new, nothing sent');
  t.equal(clock.pending, 3, 'only the three session expiries are pending, no traffic timer');
});

t.test('a removed intercept: its watchers end with intercept-ended, its events are dropped', async (t) => {
  const { state, traffic, alice, bob, agent, id } = setUp();
  traffic.report(agent, [event(id)]);
  const r = recorder();
  traffic.watch(bob, id, 0, r);
  state.removeIntercept(alice, 'web-default');
  t.ok(r.ended);
  t.equal(r.error?.code, 'intercept-ended');
  t.match(r.error?.message, /web-default/);
  traffic.report(agent, [event(id)]);
  t.equal(r.events.length, 1, 'nothing after the end');
  // Created again: a fresh ring.
  state.createIntercept(alice, spec(), target);
  const again = recorder();
  traffic.watch(bob, id, 0, again);
  t.equal(again.events.length, 0);
});

t.test('close ends every watch', async (t) => {
  const { traffic, bob, id } = setUp();
  const r = recorder();
  traffic.watch(bob, id, 0, r);
  traffic.close();
  t.ok(r.ended);
  t.equal(r.error, undefined);
});
