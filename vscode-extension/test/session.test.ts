import { ConnectionState, TpError } from '@telepresence-ts/core';
import t from 'tap';
import type { Settings } from '../src/host.js';
import { outboundRequest } from '../src/outbound.js';
import { Session } from '../src/session.js';
import { FakeDaemon, FakeWatcher, deployment, outboundUp, service, sessionDeps, settle } from './fixtures/fake-core.js';

function setup(options: { running?: boolean; settings?: Pick<Settings, 'outbound' | 'alsoProxy' | 'neverProxy'> } = {}) {
  const daemon = new FakeDaemon();
  const watcher = new FakeWatcher();
  const logs: string[] = [];
  // As activate() builds it: the outbound part read from the settings at each connect.
  const settings = options.settings;
  const deps = sessionDeps(daemon, watcher, { ...options, logs, ...(settings !== undefined ? { outbound: () => outboundRequest(settings) } : {}) });
  const session = new Session(deps);
  let changes = 0;
  session.onDidChange(() => changes++);
  return { daemon, watcher, deps, session, logs, changes: () => changes };
}

t.test('attach without a running daemon starts none and stays disconnected', async (t) => {
  const { session, deps } = setup({ running: false });
  await session.attach();
  t.equal(session.phase, 'disconnected');
  t.equal(deps.starts, 0);
});

t.test('attach to a daemon the CLI connected shows its session and intercepts', async (t) => {
  const { session, daemon, watcher } = setup();
  await daemon.connect({ kube: { kubeconfig: '', context: 'ctx', namespace: 'shop', kubeconfigEnv: '' }, managerNamespace: 'tp-system', product: 'cli', outbound: undefined });
  await daemon.intercept({ name: '', namespace: 'shop', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] }, () => undefined);
  await session.attach();
  await settle();
  t.equal(session.phase, 'connected');
  t.equal(session.connection?.context, 'ctx');
  t.same(session.intercepts.map((ii) => ii.spec?.name), ['web-shop']);
  t.ok(watcher.started.includes('Namespace/'), 'namespaces are watched once connected');
});

t.test('connect starts the daemon, connects as vscode with the settings, and watches the cluster', async (t) => {
  const { session, daemon, watcher, deps } = setup({ running: false });
  await session.connect();
  await settle();
  t.equal(deps.starts, 1);
  t.ok(daemon.calls.includes('connect /shop vscode'), daemon.calls.join(', '));
  t.equal(session.phase, 'connected');
  watcher.set('Namespace', undefined, [{ metadata: { name: 'zeta' } }, { metadata: { name: 'alpha' } }, { metadata: { name: 'shop' } }]);
  t.same(session.namespaces, ['shop', 'alpha', 'zeta'], 'the connected namespace first, the others sorted');
});

t.test('connect asks for outbound access as the settings say', async (t) => {
  const { session, daemon } = setup({ settings: { outbound: true, alsoProxy: ['192.168.50.0/24'], neverProxy: ['10.96.4.0/24'] } });
  await session.connect();
  t.same(daemon.connects.map((r) => r.outbound), [{ disabled: false, alsoProxy: ['192.168.50.0/24'], neverProxy: ['10.96.4.0/24'] }]);
  t.equal(session.connection?.outbound?.state, 'up', 'the connection reports what came up');
});

t.test('with telepresence.outbound off, connect asks for intercepts only', async (t) => {
  const { session, daemon } = setup({ settings: { outbound: false, alsoProxy: [], neverProxy: [] } });
  await session.connect();
  t.same(daemon.connects.map((r) => r.outbound), [{ disabled: true, alsoProxy: [], neverProxy: [] }]);
  t.equal(session.connection?.outbound?.state, 'off');
});

t.test('outbound access missing only when asked for and not reported', async (t) => {
  for (const c of [
    { asked: true, reports: false, missing: true },
    { asked: true, reports: true, missing: false },
    { asked: false, reports: false, missing: false },
  ]) {
    const { session, daemon } = setup({ settings: { outbound: c.asked, alsoProxy: [], neverProxy: [] } });
    daemon.reportsOutbound = c.reports;
    t.notOk(session.outboundMissing, 'not before connecting');
    await session.connect();
    t.equal(session.outboundMissing, c.missing, `asked ${String(c.asked)}, reported ${String(c.reports)}`);
  }
});

t.test('settings changed since the last connect apply to the next', async (t) => {
  const settings = { outbound: true, alsoProxy: [] as string[], neverProxy: [] as string[] };
  const { session, daemon } = setup({ settings });
  await session.connect();
  settings.outbound = false;
  await session.connect();
  t.same(daemon.connects.map((r) => r.outbound?.disabled), [false, true]);
});

t.test("outbound access that fails later reaches the session through the daemon's snapshots", async (t) => {
  const { session, daemon, changes } = setup();
  await session.connect();
  const seen = changes();
  daemon.status_ = { ...daemon.status_, outbound: outboundUp({ state: 'failed', error: 'the network daemon went away' }) };
  daemon.emit();
  t.equal(session.phase, 'connected', 'intercepts still work: the connection stays');
  t.same(session.connection?.outbound, { ...outboundUp(), state: 'failed', error: 'the network daemon went away' });
  t.ok(changes() > seen, 'listeners (the status bar) told');
});

t.test('a connect refused for a subnet conflict leaves the session disconnected with the error', async (t) => {
  const { session, daemon } = setup();
  daemon.connectError = new TpError('user', 'subnet-conflict', "the cluster's pod subnet 10.244.0.0/16 overlaps this workstation's route 10.244.0.0/16 (dev cni0)", {
    hint: 'pass --never-proxy 10.244.0.0/16 to leave those addresses to cni0, or connect with --outbound=false for intercepts only',
  });
  await t.rejects(session.connect(), { code: 'subnet-conflict' });
  t.equal(session.phase, 'disconnected');
  t.equal(session.lastError?.code, 'subnet-conflict');
});

t.test('a daemon of another version is refused', async (t) => {
  const { session, daemon } = setup();
  daemon.daemonVersion = '9.9.9';
  await t.rejects(session.connect(), { code: 'daemon-version-mismatch', message: /the running daemon is v9\.9\.9 but this extension is v/, hint: /Telepresence: Disconnect/ });
  t.equal(daemon.closed, 1);
});

t.test('Disconnect stops a daemon of another version, which the session refused to follow', async (t) => {
  const { session, daemon } = setup();
  daemon.daemonVersion = '9.9.9';
  await t.rejects(session.attach(), { code: 'daemon-version-mismatch' });
  await session.disconnect();
  t.ok(daemon.calls.includes('quit'), 'it is told to quit');
  t.equal(daemon.closed, 2, 'and the connection to it closed');
  t.equal(session.phase, 'disconnected');
});

t.test('a missing traffic-manager puts the session in no-manager', async (t) => {
  const { session, daemon } = setup();
  daemon.connectError = new TpError('user', 'manager-not-installed', 'the traffic-manager is not installed');
  await t.rejects(session.connect(), { code: 'manager-not-installed' });
  t.equal(session.phase, 'no-manager');
  t.equal(session.lastError?.code, 'manager-not-installed');
  daemon.connectError = undefined;
  await session.connect();
  t.equal(session.phase, 'connected');
});

t.test('workloads merge the watches with the daemon list and follow both live', async (t) => {
  const { session, daemon, watcher } = setup();
  await session.connect();
  await settle();
  daemon.listed.set('shop', [{ name: 'web', namespace: 'shop', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [] }]);
  t.same(session.workloads('shop'), [], 'nothing known before the watches deliver');
  t.same(watcher.started.filter((k) => k.endsWith('/shop')).sort(), ['Deployment/shop', 'ReplicaSet/shop', 'Service/shop', 'StatefulSet/shop']);
  watcher.set('Deployment', 'shop', [deployment('shop', 'web', { env: { GREETING: 'hi' } }), deployment('shop', 'api', { ready: 0 })]);
  watcher.set('Service', 'shop', [service('shop', 'web', [{ name: 'http', port: 80, targetPort: 'http' }])]);
  watcher.set('ReplicaSet', 'shop', [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-1234', namespace: 'shop', ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }] } }]);
  await settle();
  const views = session.workloads('shop');
  t.same(views.map((w) => [w.name, w.kind, w.readyReplicas, w.agentState, w.ports.length]), [
    ['api', 'Deployment', 0, 'unknown', 0],
    ['web', 'Deployment', 1, 'installed', 1],
  ], 'sorted by name; an owned ReplicaSet is not listed');
  t.same(session.workload('shop', 'web')?.containerEnv.get('app'), { GREETING: 'hi' });

  // An intercept made elsewhere (the CLI) arrives as a snapshot; the namespace is listed again.
  const before = daemon.calls.filter((c) => c === 'list shop').length;
  await daemon.intercept({ name: '', namespace: 'shop', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] }, () => undefined);
  await settle();
  t.ok(daemon.calls.filter((c) => c === 'list shop').length > before, 'listed again after the snapshot');
  t.same(session.workload('shop', 'web')?.intercepts.map((ii) => ii.spec?.name), ['web-shop']);
});

t.test('disconnect quits the daemon and stops every watch', async (t) => {
  const { session, daemon, watcher } = setup();
  await session.connect();
  await settle();
  session.workloads('shop');
  await session.disconnect();
  t.ok(daemon.calls.includes('quit'));
  t.equal(session.phase, 'disconnected');
  t.equal(session.connection, undefined);
  t.equal(watcher.stopped, watcher.started.length, 'every watch stopped');
  t.equal(daemon.watching, 0, 'the state stream is cancelled');
});

t.test('a daemon that goes away (quit from the CLI) leaves the session disconnected', async (t) => {
  const { session, daemon, changes } = setup();
  await session.connect();
  const seen = changes();
  daemon.end(new TpError('cluster', 'daemon-unreachable', 'gone'));
  t.equal(session.phase, 'disconnected');
  t.ok(changes() > seen, 'listeners told');
  t.equal(daemon.closed, 1);
});

t.test('a daemon that reports disconnected stops the watches', async (t) => {
  const { session, daemon, watcher } = setup();
  await session.connect();
  await settle();
  daemon.status_ = { ...daemon.status_, state: ConnectionState.DISCONNECTED };
  daemon.emit();
  t.equal(session.phase, 'disconnected');
  t.equal(watcher.stopped, watcher.started.length);
});

t.test('without the right to list namespaces the connected one is all there is', async (t) => {
  const { session, watcher, logs } = setup();
  await session.connect();
  await settle();
  watcher.fail('Namespace', undefined, new TpError('config', 'kube-forbidden', 'namespaces is forbidden'));
  t.same(session.namespaces, ['shop']);
  t.match(logs.join('\n'), /showing only the connected namespace/);
});

t.test('intercept and leave need a connection', async (t) => {
  const { session } = setup();
  await t.rejects(session.leave('x'), { code: 'not-connected' });
});

t.test('remote() answers with what the daemon reports of an intercept', async (t) => {
  const { session, daemon } = setup();
  await session.connect();
  daemon.remotes = [{ name: 'web-shop', environment: { A: '1' }, mountPoint: '', mounts: [], envFile: '/tmp/web.env', envJson: '', traffic: 'direct', trafficReason: '' }];
  daemon.emit();
  t.same(session.remote('web-shop')?.environment, { A: '1' });
  t.equal(session.remote('other'), undefined);
});
