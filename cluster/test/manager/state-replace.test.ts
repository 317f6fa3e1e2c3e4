/** State and replaces: conflicts, holding a container from the prepare, the end of a replace, and its dials. */
import type { DialRequest, InterceptSpec, InterceptTarget } from '@telepresence-ts/proto/manager/v1';
import t from 'tap';
import { State } from '../../src/manager/state.js';
import { FakeClock } from '../shared/fake-clock.js';

function newState(): { state: State; clock: FakeClock } {
  const clock = new FakeClock();
  let n = 0;
  return { state: new State(clock, { newId: () => `s${++n}` }), clock };
}

const client = (name: string) => ({ name, installId: `id-${name}`, product: 'cli', version: '0.1.0', resumeSessionId: '' });

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

const replaceSpec = (over: Partial<InterceptSpec> = {}): InterceptSpec =>
  spec({ name: 'web-default-replace', mode: 'replace', localPort: 0, ports: [{ containerPort: 8080, localPort: 18080 }], ...over });

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

t.test('conflicts of a replace', async (t) => {
  const cases: Array<{ name: string; first: InterceptSpec; firstTarget?: InterceptTarget; second: InterceptSpec; secondTarget?: InterceptTarget; error?: RegExp }> = [
    {
      name: "a replace of a container another client intercepts (any port of it): refused, naming them",
      first: spec({ servicePort: 'metrics' }),
      firstTarget: target({ containerPort: 9090, servicePortName: 'metrics' }),
      second: replaceSpec(),
      error: /^container app of deployment\/web \(namespace default\) cannot be replaced: alice intercepts its port 9090 \(intercept "web-default"\)$/,
    },
    {
      name: 'a replace of a container another client intercepts personally: refused too',
      first: spec({ headers: [{ name: 'x-user', value: 'alice' }] }),
      second: replaceSpec(),
      error: /cannot be replaced: alice intercepts its port 8080/,
    },
    {
      name: 'a replace of a replaced container: refused, naming the replacer',
      first: replaceSpec(),
      second: replaceSpec(),
      error: /^container app of deployment\/web \(namespace default\) is replaced by alice \(replace "web-default-replace"\)/,
    },
    {
      name: 'an intercept of a replaced container: refused, naming the replacer',
      first: replaceSpec(),
      second: spec({ headers: [{ name: 'x-user', value: 'bob' }] }),
      error: /is replaced by alice \(replace "web-default-replace"\): its app is not running in the cluster/,
    },
    { name: 'an ingest beside a replace', first: replaceSpec(), second: spec({ name: 'i', mode: 'ingest', localPort: 0 }) },
    { name: 'a replace beside an ingest', first: spec({ name: 'i', mode: 'ingest', localPort: 0 }), second: replaceSpec() },
    {
      name: 'a replace of another container of the workload',
      first: spec(),
      second: replaceSpec({ containerName: 'worker' }),
      secondTarget: target({ containerName: 'worker', containerPort: 7070 }),
    },
    { name: 'a replace of the same container in another namespace', first: replaceSpec(), second: replaceSpec({ namespace: 'other' }) },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { state } = newState();
      const alice = state.arriveAsClient(client('alice'));
      const bob = state.arriveAsClient(client('bob'));
      state.createIntercept(alice.sessionId, c.first, c.firstTarget ?? target());
      const second = (): unknown => state.createIntercept(bob.sessionId, c.second, c.secondTarget ?? target());
      if (c.error === undefined) {
        t.doesNotThrow(second);
      } else {
        t.throws(second, { code: 'replace-conflict', category: 'user', message: c.error, hint: /alice/ });
        t.equal(state.replaceConflict(bob.sessionId, c.second, (c.secondTarget ?? target()).containerName)?.message.match(c.error) !== null, true, 'replaceConflict says the same before any write');
      }
    });
  }
});

t.test('a replace being prepared holds its container: others are refused, its own create is not', async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  const r = replaceSpec();
  t.equal(state.replaceConflict(alice.sessionId, r, 'app'), undefined);
  state.holdReplace(alice.sessionId, r, 'app');
  t.strictSame(state.replacedContainers('default', 'web'), ['app'], 'its entry is written with the container replaced');
  t.match(state.replaceConflict(bob.sessionId, spec(), 'app')?.message, /is replaced by alice/, "bob's intercept, while alice's replace is prepared");
  t.match(state.replaceConflict(bob.sessionId, r, 'app')?.message, /is replaced by alice/, "bob's replace, while alice's is prepared");
  t.equal(state.replaceConflict(alice.sessionId, r, 'app'), undefined, "alice's own create");
  state.createIntercept(alice.sessionId, r, target());
  t.strictSame(state.replacedContainers('default', 'web'), ['app'], 'created: still held');
  t.strictSame(state.replacedContainers('default', 'api'), [], 'another workload');
});

t.test('the end of a replace is told, once per workload: removed, released, or its session gone', async (t) => {
  const setup = () => {
    const { state, clock } = newState();
    const alice = state.arriveAsClient(client('alice'));
    const ended: string[] = [];
    state.onReplaceEnded((ns, w) => ended.push(`${ns}/${w}`));
    return { state, clock, alice, ended };
  };
  t.test('leave', async (t) => {
    const { state, alice, ended } = setup();
    state.createIntercept(alice.sessionId, replaceSpec(), target());
    state.createIntercept(alice.sessionId, spec(), target({ containerName: 'worker' }));
    state.removeIntercept(alice.sessionId, 'web-default');
    t.strictSame(ended, [], 'an intercept is no replace');
    state.removeIntercept(alice.sessionId, 'web-default-replace');
    t.strictSame(ended, ['default/web']);
    t.strictSame(state.replacedContainers('default', 'web'), []);
  });
  t.test('a prepare that failed', async (t) => {
    const { state, alice, ended } = setup();
    state.holdReplace(alice.sessionId, replaceSpec(), 'app');
    state.releaseReplace(alice.sessionId, 'web-default-replace');
    state.releaseReplace(alice.sessionId, 'web-default-replace');
    t.strictSame(ended, ['default/web'], 'once');
    t.strictSame(state.replacedContainers('default', 'web'), []);
  });
  t.test('the session expires, with a replace created and another being prepared', async (t) => {
    const { state, clock, ended } = setup();
    const bob = state.arriveAsClient(client('bob'));
    state.createIntercept(bob.sessionId, replaceSpec(), target());
    state.holdReplace(bob.sessionId, replaceSpec({ name: 'w2', containerName: 'worker' }), 'worker');
    t.strictSame(state.replacedContainers('default', 'web'), ['app', 'worker']);
    clock.advance(10_000);
    t.strictSame(ended, ['default/web'], 'one line for the workload');
    t.strictSame(state.replacedContainers('default', 'web'), []);
  });
});

t.test("a replace's connection is dialled on the local port of the container port it came to", async (t) => {
  const { state } = newState();
  const alice = state.arriveAsClient(client('alice'));
  const ic = state.createIntercept(alice.sessionId, replaceSpec({ ports: [{ containerPort: 8080, localPort: 18080 }, { containerPort: 9090, localPort: 19090 }] }), target());
  const agent = state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-abc', podIp: '10.0.0.7', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  const dials: DialRequest[] = [];
  state.watchDials(alice.sessionId, { next: (d) => dials.push(d), end: () => undefined });
  const open = (connectionId: string, containerPort: number | undefined) =>
    state.openTunnel({ sessionId: agent.sessionId, connectionId, interceptId: ic.id, protocol: '', destination: '', containerPort }, 0).catch(() => undefined);
  void open('c1', 9090);
  void open('c2', 7070);
  void open('c3', undefined);
  t.strictSame(
    dials.map((d) => [d.connectionId, d.containerPort, d.localPort]),
    [
      ['c1', 9090, 19090],
      ['c2', 7070, 7070],
      ['c3', 8080, 18080],
    ],
    'mapped; not listed: the same number; not named by the agent: the target port',
  );
  state.close();
});
