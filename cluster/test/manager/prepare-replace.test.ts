/** The prepare of a replace, and of an intercept beside one; replace.ts giving containers back. */
import t from 'tap';
import { parseAgentConfig, replacedContainers, serializeAgentConfig, withReplaced } from '@telepresence-ts/core/agent-config';
import { buildAgentConfig, type BuildOptions } from '../../src/manager/agent-config-builder.js';
import { prepareIntercept, type PrepareDeps } from '../../src/manager/prepare.js';
import { RESTART_GRACE_MS, ReplaceSync, syncReplaced } from '../../src/manager/replace.js';
import { AgentConfigWatcher } from '../../src/manager/rollout.js';
import { State } from '../../src/manager/state.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const build: BuildOptions = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' };
const log = createLogger('m', 'error', () => undefined);
const spec = (over: Record<string, unknown> = {}) => ({
  name: '',
  namespace: 'default',
  workloadName: 'web',
  workloadKind: '',
  serviceName: '',
  servicePort: '',
  containerName: 'app',
  localPort: 0,
  headers: [],
  httpPathPrefix: '',
  httpMethods: [],
  mode: 'replace',
  ports: [{ containerPort: 9090, localPort: 19090 }],
  ...over,
});
const web = workload('web', [
  { name: 'app', ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] },
  { name: 'side', ports: [{ name: 'metrics', containerPort: 9100 }] },
]);
const webRef = { kind: 'Deployment' as const, name: 'web', namespace: 'default' };
const services = [
  service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }),
  service('metrics', [{ name: 'metrics', port: 9100, targetPort: 'metrics' }], { app: 'web' }),
];
const plain = buildAgentConfig(web, services, build);
const agentOf = (podName: string) => ({ name: 'web', namespace: 'default', podName, podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
const client = (name: string) => ({ name, installId: `id-${name}`, product: 'cli', version: '0.1.0', resumeSessionId: '' });

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

function setup() {
  const kube = new FakeKube();
  kube.workloads.push(web);
  kube.services.push(...services);
  const clock = new FakeClock();
  const state = new State(clock, { newId: (() => { let n = 0; return () => `s${++n}`; })() });
  const watcher = new AgentConfigWatcher({ kube, clock, log });
  watcher.start();
  const alice = state.arriveAsClient(client('alice'));
  const bob = state.arriveAsClient(client('bob'));
  const depsFor = (sessionId: string): PrepareDeps => ({ kube, state, clock, build, timeoutMs: 120_000, replaces: { sessionId, state } });
  const lines: string[] = [];
  const entry = () => parseAgentConfig('web', kube.maps.get('default')?.['web'] ?? '');
  return { kube, clock, state, alice, bob, depsFor, lines, entry, progress: (l: string) => void lines.push(l) };
}

t.test('a replace writes the entry with its container marked, holds it, and waits for every pod without it', async (t) => {
  const { kube, clock, state, alice, depsFor, lines, entry, progress } = setup();
  const hash = agentConfigHash(withReplaced(plain, ['app']));
  kube.setPods(webRef, [pod('web-old-1'), pod('web-old-2')]);
  kube.onRestart = () => kube.setPods(webRef, [pod('web-old-1'), pod('web-new-1', { agent: true, hash })]);
  const result = prepareIntercept(depsFor(alice.sessionId), spec(), progress);
  let settled = false;
  void result.then(() => (settled = true));
  await flush();
  t.strictSame(replacedContainers(entry()), ['app'], 'the entry marks the container');
  t.strictSame(state.replacedContainers('default', 'web'), ['app'], 'held from before the write');
  t.match(lines[0], /without its container app; replacing its pods: every replica loses the container/);
  state.arriveAsAgent(agentOf('web-new-1'));
  kube.onRestart = () => undefined;
  kube.setPods(webRef, [pod('web-old-2'), pod('web-new-1', { agent: true, hash })]);
  clock.advance(1000);
  await flush();
  t.notOk(settled, 'a replica still runs the app');
  kube.setPods(webRef, [pod('web-new-1', { agent: true, hash }), pod('web-new-2', { agent: true, hash })]);
  clock.advance(1000);
  const prepared = await result;
  t.equal(prepared.spec?.name, 'web-default-replace');
  t.strictSame(prepared.spec?.ports, [
    { containerPort: 8080, localPort: 8080 },
    { containerPort: 9090, localPort: 19090 },
  ]);
  t.equal(prepared.target?.containerName, 'app');
});

t.test('refused before anything is written', async (t) => {
  const cases: Array<{ name: string; before: (s: ReturnType<typeof setup>) => void; spec: ReturnType<typeof spec>; code: string; message: RegExp }> = [
    {
      name: "another client's intercept of the container",
      before: (s) => void s.state.createIntercept(s.bob.sessionId, { ...spec({ name: 'web-default', mode: '', localPort: 8080, ports: [] }), workloadKind: 'Deployment' }, {
        serviceName: 'web', serviceUid: 'uid-web', servicePortName: 'grpc', servicePort: 90, protocol: 'TCP', containerName: 'app', containerPort: 9090, agentPort: 9902, sharedWith: [],
      }),
      spec: spec(),
      code: 'replace-conflict',
      message: /^container app of deployment\/web \(namespace default\) cannot be replaced: bob intercepts its port 9090/,
    },
    {
      name: "an intercept of a container another client's replace holds",
      before: (s) => s.state.holdReplace(s.bob.sessionId, { ...spec({ name: 'r' }) }, 'app'),
      spec: spec({ mode: '', localPort: 8080, ports: [], servicePort: 'http' }),
      code: 'replace-conflict',
      message: /is replaced by bob \(replace "r"\)/,
    },
    { name: 'a port the container is not reached on', before: () => undefined, spec: spec({ ports: [{ containerPort: 9100, localPort: 9100 }] }), code: 'unknown-container-port', message: /not reached on port 9100/ },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = setup();
      c.before(s);
      await t.rejects(prepareIntercept(s.depsFor(s.alice.sessionId), c.spec, s.progress), { code: c.code, category: 'user', message: c.message });
      t.strictSame(s.kube.calls, [], 'nothing written, no pod touched');
    });
  }
});

t.test("an intercept's prepare keeps the containers that replaces hold out of the pods", async (t) => {
  const { kube, state, alice, bob, depsFor, entry, progress } = setup();
  state.holdReplace(bob.sessionId, spec({ name: 'r' }), 'app');
  const hash = agentConfigHash(withReplaced(plain, ['app']));
  kube.setPods(webRef, [pod('web-1', { agent: true, hash })]);
  state.arriveAsAgent(agentOf('web-1'));
  const prepared = await prepareIntercept(depsFor(alice.sessionId), spec({ mode: 'ingest', containerName: 'side', ports: [] }), progress);
  t.equal(prepared.spec?.containerName, 'side');
  t.strictSame(replacedContainers(entry()), ['app']);
});

t.test('a replace whose prepare fails: the entry as it was, the container let go', async (t) => {
  const { kube, clock, state, alice, depsFor, progress } = setup();
  const ended: string[] = [];
  state.onReplaceEnded((ns, w) => ended.push(`${ns}/${w}`));
  kube.maps.set('default', { web: serializeAgentConfig(plain) });
  const result = prepareIntercept(depsFor(alice.sessionId), spec(), progress);
  result.catch(() => undefined);
  await flush();
  clock.advance(120_000);
  await flush();
  await t.rejects(result, { code: 'agent-timeout' });
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(plain));
  t.strictSame(state.replacedContainers('default', 'web'), []);
  t.strictSame(ended, ['default/web']);
});

t.test('syncReplaced: the entry marks exactly what replaces hold; nothing written when it does', async (t) => {
  const kube = new FakeKube();
  const held: string[] = [];
  const deps = { kube, state: { replacedContainers: () => [...held] }, log };
  t.equal(await syncReplaced(deps, 'default', 'web'), false, 'no entry: nothing to do');
  kube.maps.set('default', { web: serializeAgentConfig(withReplaced(plain, ['app'])) });
  held.push('app');
  t.equal(await syncReplaced(deps, 'default', 'web'), false, 'in line');
  held.length = 0;
  t.equal(await syncReplaced(deps, 'default', 'web'), true, 'the replace ended: written');
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(plain), 'the entry an intercept alone would have, byte for byte (same hash: pods with the app)');
  kube.maps.set('default', { web: 'not json' });
  t.equal(await syncReplaced(deps, 'default', 'web'), false, 'a bad entry is left alone');
});

t.test('ReplaceSync: the end of a replace gives the container back; a manager that restarted waits for the clients first', async (t) => {
  const { kube, clock, state, alice } = setup();
  const sync = new ReplaceSync({ kube, state, log });
  state.onReplaceEnded((ns, w) => void sync.sync(ns, w));
  kube.maps.set('default', { web: serializeAgentConfig(withReplaced(plain, ['app'])) });
  state.createIntercept(alice.sessionId, { ...spec({ name: 'r' }), workloadKind: 'Deployment' }, {
    serviceName: 'web', serviceUid: 'uid-web', servicePortName: 'http', servicePort: 80, protocol: 'TCP', containerName: 'app', containerPort: 8080, agentPort: 9901, sharedWith: [],
  });
  state.removeIntercept(alice.sessionId, 'r');
  await flush();
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(plain), 'left: the app comes back');

  kube.maps.set('default', { web: serializeAgentConfig(withReplaced(plain, ['app'])), other: '{}' });
  kube.calls.length = 0;
  sync.syncAllAfterGrace(clock);
  clock.advance(RESTART_GRACE_MS - 1);
  await flush();
  t.strictSame(kube.calls, [], 'not before the grace');
  clock.advance(1);
  await flush();
  t.strictSame(kube.calls, ['apply default/web'], 'then every container no replace holds, and only those entries');
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(plain));
});

t.test("a prepare keeps the containers the entry marks, though no replace holds them yet (a restarted manager's)", async (t) => {
  const { kube, state, alice, depsFor, entry, progress } = setup();
  kube.maps.set('default', { web: serializeAgentConfig(withReplaced(plain, ['app'])) });
  const hash = agentConfigHash(withReplaced(plain, ['app']));
  kube.setPods(webRef, [pod('web-1', { agent: true, hash })]);
  state.arriveAsAgent(agentOf('web-1'));
  const prepared = await prepareIntercept(depsFor(alice.sessionId), spec({ mode: 'ingest', containerName: 'side', ports: [] }), progress);
  t.equal(prepared.rolledOut, false, 'nothing written, nothing restarted');
  t.strictSame(replacedContainers(entry()), ['app']);
});

t.test('ReplaceSync.afterPrepare: nothing during the grace after a restart, a sync after it', async (t) => {
  const { kube, clock, state } = setup();
  const sync = new ReplaceSync({ kube, state, log });
  kube.maps.set('default', { web: serializeAgentConfig(withReplaced(plain, ['app'])) });
  sync.syncAllAfterGrace(clock);
  await sync.afterPrepare('default', 'web');
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(withReplaced(plain, ['app'])), 'in the grace: left for its owner to make again');
  clock.advance(RESTART_GRACE_MS);
  await flush();
  await sync.afterPrepare('default', 'web');
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(plain), 'after it: given back');
});
