import { InterceptDisposition, type AgentInfo, type DialRequest, type InterceptInfo, type InterceptSpec, type InterceptTarget } from '@telepresence-ts/proto/manager/v1';
import t from 'tap';
import { State, type Subscriber } from '../../src/manager/state.js';
import { FakeClock } from '../shared/fake-clock.js';

function newState(): { state: State; clock: FakeClock } {
  const clock = new FakeClock();
  let n = 0;
  return { state: new State(clock, { newId: () => `s${++n}` }), clock };
}

const client = (name: string, resumeSessionId = '') => ({ name, installId: `id-${name}`, product: 'cli', version: '0.1.0', resumeSessionId });
const agentInfo = (name = 'web', namespace = 'default', podName = `${name}-abc`): AgentInfo => ({
  name,
  namespace,
  podName,
  podIp: '10.0.0.7',
  version: '0.1.0',
  kind: 'Deployment',
  containers: [],
  sftpPort: 0,
  tunnelPort: 0,
});

function spec(over: Partial<InterceptSpec> = {}): InterceptSpec {
  return {
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
  };
}

function target(over: Partial<InterceptTarget> = {}): InterceptTarget {
  return {
    serviceName: 'web',
    serviceUid: 'uid',
    servicePortName: 'http',
    servicePort: 80,
    protocol: 'TCP',
    containerName: 'app',
    containerPort: 8080,
    agentPort: 9901,
    sharedWith: [],
    ...over,
  };
}

/** A subscriber recording every snapshot. */
function recorder<T>(): Subscriber<T> & { values: T[]; ended: boolean } {
  const r = {
    values: [] as T[],
    ended: false,
    next: (v: T) => void r.values.push(v),
    end: () => void (r.ended = true),
  };
  return r;
}

t.test('sessions: heartbeat and expiry', async (t) => {
  const cases: ReadonlyArray<{ name: string; steps: ReadonlyArray<'remain' | number>; alive: boolean }> = [
    { name: 'fresh session is alive', steps: [], alive: true },
    { name: 'alive just before 10 s', steps: [9_999], alive: true },
    { name: 'expires after 10 s of silence', steps: [10_000], alive: false },
    { name: 'remain every 3 s keeps it', steps: [3000, 'remain', 3000, 'remain', 3000, 'remain', 3000, 'remain'], alive: true },
    { name: 'remain at 9 s extends to 19 s', steps: [9_000, 'remain', 9_999], alive: true },
    { name: 'expires 10 s after the last remain', steps: [9_000, 'remain', 10_000], alive: false },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { state, clock } = newState();
      const s = state.arriveAsClient(client('alice'));
      t.strictSame(s, { sessionId: 's1', heartbeatSeconds: 3, expirySeconds: 10, managerPodIps: [] });
      for (const step of c.steps) {
        if (step === 'remain') state.remain(s.sessionId);
        else clock.advance(step);
      }
      t.equal(state.sessionKind(s.sessionId), c.alive ? 'client' : undefined);
      if (!c.alive) t.throws(() => state.remain(s.sessionId), { code: 'session-expired', category: 'cluster' });
    });
  }
});

t.test('depart ends a session at once and is idempotent', async (t) => {
  const { state, clock } = newState();
  const s = state.arriveAsClient(client('alice'));
  state.depart(s.sessionId);
  state.depart(s.sessionId);
  t.equal(state.sessionKind(s.sessionId), undefined);
  t.equal(clock.pending, 0, 'no expiry timer left behind');
});

t.test('an expired client loses its intercepts; watchers see it and its own watchers end', async (t) => {
  const { state, clock } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  state.createIntercept(alice.sessionId, spec(), target());
  const bobsView = recorder<InterceptInfo[]>();
  const alicesView = recorder<InterceptInfo[]>();
  state.watchIntercepts(bob.sessionId, bobsView);
  state.watchIntercepts(alice.sessionId, alicesView);
  t.equal(bobsView.values.at(-1)?.length, 1, 'bob sees alice’s intercept');
  clock.advance(9_000);
  state.remain(bob.sessionId);
  clock.advance(1000);
  t.equal(state.sessionKind(alice.sessionId), undefined, 'alice expired');
  t.strictSame(state.intercepts(), []);
  t.strictSame(bobsView.values.at(-1), [], 'bob got the empty snapshot');
  t.ok(alicesView.ended, 'alice’s stream ended');
  t.notOk(bobsView.ended);
});

t.test('a client that lost its session arrives again under the same id, unless that id is live or malformed', async (t) => {
  const { state } = newState();
  const lost = '0f9c2a8e-3b1d-4c5e-9a7f-2d6b8e1c4a90';
  const back = state.arriveAsClient(client('alice', lost));
  t.equal(back.sessionId, lost, 'an unknown id is kept: the intercepts created again keep their ids');
  const info = state.createIntercept(back.sessionId, spec(), target());
  t.equal(info.id, `${lost}:web-default`);
  const other = state.arriveAsClient(client('mallory', lost));
  t.equal(other.sessionId, 's1', 'a live session id is never handed to another arrival');
  t.equal(state.arriveAsClient(client('bob', '../etc')).sessionId, 's2', 'an id that is not a UUID is ignored');
  t.equal(state.arriveAsClient(client('carol')).sessionId, 's3', 'a first arrival gets a new id');
});

t.test('agents: arrive, watch, expire', async (t) => {
  const { state, clock } = newState();
  const c = state.arriveAsClient(client('alice'));
  const watch = recorder<AgentInfo[]>();
  state.watchAgents(c.sessionId, watch);
  const a = state.arriveAsAgent(agentInfo());
  t.equal(state.sessionKind(a.sessionId), 'agent');
  clock.advance(9_000);
  state.remain(c.sessionId);
  clock.advance(1000);
  t.strictSame(
    watch.values.map((v) => v.map((x) => x.podName)),
    [[], ['web-abc'], []],
    'snapshots: none, the agent, none after its expiry',
  );
  t.notOk(watch.ended);
  clock.advance(10_000);
  t.ok(watch.ended, 'the stream ends with its session');
});

t.test('intercept conflicts', async (t) => {
  const h = (name: string, value: string) => ({ name, value });
  const cases: ReadonlyArray<{
    name: string;
    first: Partial<InterceptSpec>;
    firstTarget?: Partial<InterceptTarget>;
    second: Partial<InterceptSpec>;
    secondTarget?: Partial<InterceptTarget>;
    sameClient?: boolean;
    want: 'ok' | 'intercept-conflict' | 'intercept-exists';
  }> = [
    { name: 'global vs global on the same target', first: {}, second: {}, want: 'intercept-conflict' },
    { name: 'global vs personal', first: {}, second: { headers: [h('x-user', 'b')] }, want: 'intercept-conflict' },
    { name: 'personal vs global', first: { headers: [h('x-user', 'a')] }, second: {}, want: 'intercept-conflict' },
    { name: 'personal vs personal, different headers', first: { headers: [h('x-user', 'a')] }, second: { headers: [h('x-user', 'b')] }, want: 'ok' },
    {
      name: 'personal vs personal, same headers in another order and case',
      first: { headers: [h('x-user', 'a'), h('x-team', 't')] },
      second: { headers: [h('X-Team', 't'), h('x-user', 'a')] },
      want: 'intercept-conflict',
    },
    { name: 'global vs a path prefix alone (personal)', first: {}, second: { httpPathPrefix: '/api/' }, want: 'intercept-conflict' },
    { name: 'methods alone (personal) vs global', first: { httpMethods: ['POST'] }, second: {}, want: 'intercept-conflict' },
    { name: 'the same path prefix', first: { httpPathPrefix: '/api/' }, second: { httpPathPrefix: '/api/' }, want: 'intercept-conflict' },
    { name: 'nested path prefixes: both allowed', first: { httpPathPrefix: '/api/' }, second: { httpPathPrefix: '/api/v2/' }, want: 'ok' },
    { name: 'the same methods in another order', first: { httpMethods: ['GET', 'POST'] }, second: { httpMethods: ['POST', 'GET'] }, want: 'intercept-conflict' },
    { name: 'overlapping methods: both allowed', first: { httpMethods: ['GET', 'POST'] }, second: { httpMethods: ['POST'] }, want: 'ok' },
    { name: 'a path prefix vs methods: both allowed', first: { httpPathPrefix: '/api/' }, second: { httpMethods: ['POST'] }, want: 'ok' },
    { name: 'same headers, one with a prefix: both allowed', first: { headers: [h('x-user', 'a')] }, second: { headers: [h('x-user', 'a')], httpPathPrefix: '/api/' }, want: 'ok' },
    {
      name: 'same headers, prefix and methods',
      first: { headers: [h('x-user', 'a')], httpPathPrefix: '/api/', httpMethods: ['GET'] },
      second: { headers: [h('X-User', 'a')], httpPathPrefix: '/api/', httpMethods: ['GET'] },
      want: 'intercept-conflict',
    },
    { name: 'global on another container port', first: {}, second: {}, secondTarget: { containerPort: 9090, agentPort: 9902 }, want: 'ok' },
    { name: 'global on another workload', first: {}, second: { workloadName: 'api' }, want: 'ok' },
    { name: 'global in another namespace', first: {}, second: { namespace: 'other' }, want: 'ok' },
    { name: 'same name twice by one client', first: {}, second: { workloadName: 'api' }, sameClient: true, want: 'intercept-exists' },
    { name: 'another name by one client, other target', first: {}, second: { name: 'two', workloadName: 'api' }, sameClient: true, want: 'ok' },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { state } = newState();
      const alice = state.arriveAsClient(client('alice@laptop'));
      const bob = c.sameClient === true ? alice : state.arriveAsClient(client('bob@desk'));
      state.createIntercept(alice.sessionId, spec(c.first), target(c.firstTarget));
      const create = () => state.createIntercept(bob.sessionId, spec(c.second), target(c.secondTarget));
      if (c.want === 'ok') {
        t.doesNotThrow(create);
        t.equal(state.intercepts().length, 2);
      } else {
        t.throws(create, { code: c.want, category: 'user' });
        t.equal(state.intercepts().length, 1);
      }
    });
  }
});

t.test('an ingest conflicts with nothing: it shares the workload with a global intercept, either way round', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  state.createIntercept(alice.sessionId, spec({ name: 'web-ingest', mode: 'ingest', localPort: 0 }), target());
  t.doesNotThrow(() => state.createIntercept(bob.sessionId, spec({ name: 'web' }), target()), 'a global intercept after an ingest');
  t.doesNotThrow(() => state.createIntercept(alice.sessionId, spec({ name: 'web-2', mode: 'ingest', localPort: 0 }), target()), 'and another ingest after it');
  t.throws(() => state.createIntercept(alice.sessionId, spec({ name: 'web-2', mode: 'ingest', localPort: 0 }), target()), { code: 'intercept-exists' }, 'names are still unique');
});

t.test('a conflict names the holder', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice@laptop'));
  const bob = state.arriveAsClient(client('bob@desk'));
  state.createIntercept(alice.sessionId, spec(), target());
  t.throws(() => state.createIntercept(bob.sessionId, spec(), target()), {
    message: 'deployment/web (namespace default, container app port 8080) is already intercepted by alice@laptop (a global intercept, intercept "web-default")',
    hint: 'ask alice@laptop to leave "web-default": a global intercept takes every request of the port, so no other intercept can share it',
  });
});

t.test('a conflict with a personal intercept names the holder and the headers, and suggests --http-header', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice@laptop'));
  const bob = state.arriveAsClient(client('bob@desk'));
  state.createIntercept(alice.sessionId, spec({ headers: [{ name: 'x-user', value: 'alice' }] }), target());
  t.throws(() => state.createIntercept(bob.sessionId, spec(), target()), {
    code: 'intercept-conflict',
    message: /already intercepted by alice@laptop \(a personal intercept for requests with x-user=alice, intercept "web-default"\)$/,
    hint: /--http-header <name>=<value>/,
  });
  t.throws(() => state.createIntercept(bob.sessionId, spec({ headers: [{ name: 'X-User', value: 'alice' }] }), target()), {
    code: 'intercept-conflict',
    message: /by alice@laptop \(a personal intercept with the same filter, requests with x-user=alice/,
    hint: 'choose another filter: alice@laptop already takes the requests with x-user=alice; use other --http-header values or another --http-path-prefix',
  });
});

t.test('a conflict with a path and method filter names the holder, the intercept and the filter', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice@laptop'));
  const bob = state.arriveAsClient(client('bob@desk'));
  state.createIntercept(alice.sessionId, spec({ name: 'api', httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] }), target());
  t.throws(() => state.createIntercept(bob.sessionId, spec({ httpPathPrefix: '/api/', httpMethods: ['POST', 'GET'] }), target()), {
    code: 'intercept-conflict',
    message:
      'deployment/web (namespace default, container app port 8080) is already intercepted by alice@laptop (a personal intercept with the same filter, requests to /api/ with GET or POST, intercept "api")',
    hint: 'choose another filter: alice@laptop already takes the requests to /api/ with GET or POST; use other --http-header values or another --http-path-prefix',
  });
  t.throws(() => state.createIntercept(bob.sessionId, spec(), target()), {
    code: 'intercept-conflict',
    message: /\(a personal intercept for requests to \/api\/ with GET or POST, intercept "api"\)$/,
    hint: /--http-path-prefix <path>/,
  });
});

t.test('a filter no request could match is refused before it is recorded', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice@laptop'));
  const cases: Array<{ name: string; over: Partial<InterceptSpec>; message: RegExp }> = [
    { name: 'a prefix without /', over: { httpPathPrefix: 'api' }, message: /path prefix "api": it does not start with "\/"/ },
    { name: 'a prefix with a query', over: { httpPathPrefix: '/api?x' }, message: /contains "\?"/ },
    { name: 'a lower-case method', over: { httpMethods: ['get'] }, message: /method "get": .*not upper case/ },
    { name: 'a method that is no token', over: { httpMethods: ['GE T'] }, message: /method "GE T"/ },
  ];
  for (const c of cases) t.throws(() => state.createIntercept(alice.sessionId, spec(c.over), target()), { code: 'bad-http-filter', category: 'user', message: c.message }, c.name);
  t.equal(state.intercepts().length, 0);
});

t.test('remove: own intercepts only, and watchers follow', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  const ic = state.createIntercept(alice.sessionId, spec(), target());
  t.equal(ic.id, 's1:web-default');
  t.equal(ic.disposition, InterceptDisposition.WAITING);
  t.throws(() => state.removeIntercept(bob.sessionId, 'web-default'), { code: 'unknown-intercept' });
  state.removeIntercept(alice.sessionId, 'web-default');
  t.strictSame(state.intercepts(), []);
  t.throws(() => state.removeIntercept(alice.sessionId, 'web-default'), { code: 'unknown-intercept' });
});

t.test('agents see the intercepts of their workload; dispositions follow agents', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  state.createIntercept(alice.sessionId, spec(), target());
  state.createIntercept(alice.sessionId, spec({ name: 'api', workloadName: 'api' }), target());
  state.createIntercept(alice.sessionId, spec({ name: 'web-other', namespace: 'other' }), target());
  const webAgent = state.arriveAsAgent(agentInfo('web', 'default'));
  const agentView = recorder<InterceptInfo[]>();
  state.watchIntercepts(webAgent.sessionId, agentView);
  const clientView = recorder<InterceptInfo[]>();
  state.watchIntercepts(alice.sessionId, clientView);
  t.strictSame(
    agentView.values.at(-1)?.map((i) => i.id),
    ['s1:web-default'],
  );
  t.strictSame(
    clientView.values.at(-1)?.map((i) => [i.id, i.disposition]),
    [
      ['s1:web-default', InterceptDisposition.ACTIVE],
      ['s1:api', InterceptDisposition.WAITING],
      ['s1:web-other', InterceptDisposition.WAITING],
    ],
  );
  state.depart(webAgent.sessionId);
  t.ok(agentView.ended);
  t.equal(clientView.values.at(-1)?.[0]?.disposition, InterceptDisposition.WAITING, 'back to WAITING when the agent leaves');
});

t.test('tunnel pairing', async (t) => {
  const setup = () => {
    const { state, clock } = newState();
    const alice = state.arriveAsClient(client('alice'));
    const ic = state.createIntercept(alice.sessionId, spec(), target());
    const agent = state.arriveAsAgent(agentInfo());
    const dials = recorder<DialRequest>();
    state.watchDials(alice.sessionId, dials);
    return { state, clock, alice, ic, agent, dials };
  };

  t.test('the agent waits for the owner; each side gets the other’s handle', async (t) => {
    const { state, alice, ic, agent, dials, clock } = setup();
    const agentSide = state.openTunnel({ sessionId: agent.sessionId, connectionId: 'c1', interceptId: ic.id, protocol: '', destination: '' }, 'agent-end');
    t.strictSame(dials.values, [{ connectionId: 'c1', interceptId: ic.id, localPort: 8080, source: '10.0.0.7' }]);
    const clientSide = await state.openTunnel({ sessionId: alice.sessionId, connectionId: 'c1', interceptId: '', protocol: '', destination: '' }, 'client-end');
    t.equal(clientSide, 'agent-end');
    t.equal(await agentSide, 'client-end');
    clock.advance(9_000);
    state.remain(alice.sessionId);
    state.remain(agent.sessionId);
    clock.advance(1_000);
    await t.rejects(state.openTunnel({ sessionId: alice.sessionId, connectionId: 'c1', interceptId: '', protocol: '', destination: '' }, 'again'), { code: 'unknown-connection' }, 'a connection pairs once');
  });

  t.test('10 s without the owner fails the agent side', async (t) => {
    const { state, alice, ic, agent, clock } = setup();
    const agentSide = state.openTunnel({ sessionId: agent.sessionId, connectionId: 'c1', interceptId: ic.id, protocol: '', destination: '' }, 'agent-end');
    // Both sessions stay alive past the pairing timeout, which is as long as a session's expiry.
    clock.advance(9_000);
    state.remain(alice.sessionId);
    state.remain(agent.sessionId);
    clock.advance(999);
    let settled = false;
    agentSide.then(
      () => (settled = true),
      () => (settled = true),
    );
    await Promise.resolve();
    t.notOk(settled, 'still waiting at 9.999 s');
    clock.advance(1);
    await t.rejects(agentSide, { code: 'dial-timeout' });
  });

  t.test('refusals', async (t) => {
    const { state, alice, ic, agent } = setup();
    const bob = state.arriveAsClient(client('bob'));
    const other = state.arriveAsAgent(agentInfo('api'));
    await t.rejects(state.openTunnel({ sessionId: other.sessionId, connectionId: 'c1', interceptId: ic.id, protocol: '', destination: '' }, 0), { code: 'unknown-intercept' }, 'agent of another workload');
    await t.rejects(state.openTunnel({ sessionId: agent.sessionId, connectionId: 'c1', interceptId: 'nope', protocol: '', destination: '' }, 0), { code: 'unknown-intercept' }, 'unknown intercept');
    await t.rejects(state.openTunnel({ sessionId: 'gone', connectionId: 'c1', interceptId: ic.id, protocol: '', destination: '' }, 0), { code: 'session-expired' }, 'unknown session');
    const pending = state.openTunnel({ sessionId: agent.sessionId, connectionId: 'c2', interceptId: ic.id, protocol: '', destination: '' }, 0);
    await t.rejects(state.openTunnel({ sessionId: bob.sessionId, connectionId: 'c2', interceptId: '', protocol: '', destination: '' }, 0), { code: 'unknown-connection' }, 'not the owner');
    state.depart(alice.sessionId);
    await t.rejects(pending, { code: 'session-ended' }, 'the owner departed');
  });

  t.test('cancelTunnel forgets a pending connection', async (t) => {
    const { state, alice, ic, agent, clock } = setup();
    const agentSide = state.openTunnel({ sessionId: agent.sessionId, connectionId: 'c1', interceptId: ic.id, protocol: '', destination: '' }, 0);
    agentSide.catch(() => undefined);
    state.cancelTunnel('c1');
    await t.rejects(state.openTunnel({ sessionId: alice.sessionId, connectionId: 'c1', interceptId: '', protocol: '', destination: '' }, 0), { code: 'unknown-connection' });
    const before = clock.pending;
    clock.advance(10_000);
    t.ok(clock.pending <= before, 'no pairing timer fires');
  });
});

t.test('the intercepted container\'s environment goes to the owner only', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  state.createIntercept(alice.sessionId, spec(), target());
  t.throws(() => state.interceptEnvironment(alice.sessionId, 'web-default'), { code: 'no-agent' }, 'no agent in session yet');
  const env = { DB_PASSWORD: 's3cret' };
  state.arriveAsAgent({ ...agentInfo(), containers: [{ name: 'app', env, mountRoot: '/tel_app_mounts/app', mounts: ['/etc/config'] }], sftpPort: 40123 });
  t.strictSame(state.interceptEnvironment(alice.sessionId, 'web-default'), {
    namespace: 'default',
    podName: 'web-abc',
    containerName: 'app',
    env,
    mountRoot: '/tel_app_mounts/app',
    mounts: ['/etc/config'],
    sftpPort: 40123,
  });
  t.throws(() => state.interceptEnvironment(bob.sessionId, 'web-default'), { code: 'unknown-intercept' }, 'not for another client');
  t.strictSame(state.agents()[0]?.containers, [], 'agent snapshots carry no environment');
});
