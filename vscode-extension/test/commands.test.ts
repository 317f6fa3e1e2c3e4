import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import { Commands, DEBUG, OPEN_ENV_FILE } from '../src/commands.js';
import { DebugIntegration } from '../src/debug.js';
import { OPEN_SETTINGS, RETRY, SHOW_LOGS } from '../src/notify.js';
import { Session } from '../src/session.js';
import { WorkloadsTree, type TreeNode } from '../src/workloads-tree.js';
import { FakeDebugHost, FakeFileStore, FakeHost } from './fixtures/fake-host.js';
import { FakeDaemon, FakeWatcher, deployment, service, sessionDeps, settle } from './fixtures/fake-core.js';

async function setup(options: { connect?: boolean; running?: boolean } = {}) {
  const daemon = new FakeDaemon();
  const watcher = new FakeWatcher();
  const session = new Session(sessionDeps(daemon, watcher, { running: options.running ?? true }));
  const host = new FakeHost();
  const debugHost = new FakeDebugHost([{ type: 'node', request: 'launch', name: 'Run server' }]);
  const files = new FakeFileStore();
  const debug = new DebugIntegration({
    session,
    host,
    debug: debugHost,
    settings: () => ({ kubeconfig: '', context: '', namespace: '', managerNamespace: '', leaveInterceptOnDebugEnd: true, outbound: true, alsoProxy: [], neverProxy: [], cliPath: '' }),
    files,
  });
  const installs: string[] = [];
  const commands = new Commands({
    host,
    session,
    debug,
    files,
    // The daemon found only a CLI of another version on PATH.
    cliLookup: () => ({ want: '0.1.0', setting: undefined, found: undefined, skipped: [{ path: '/usr/local/bin/kubectl-telepresence', bundle: '/usr/local/lib/node_modules/telepresence-ts/kubectl-telepresence.js', version: '0.0.9' }] }),
    installManager: (progress) => {
      progress('applying 12 objects');
      installs.push('install');
      daemon.connectError = undefined;
      return Promise.resolve();
    },
  });
  if (options.connect ?? true) {
    await session.connect();
    await settle();
    session.workloads('shop');
    watcher.set('Deployment', 'shop', [deployment('shop', 'web'), deployment('shop', 'lonely')]);
    daemon.listed.set('shop', [
      { name: 'web', namespace: 'shop', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'none', intercepts: [] },
      { name: 'lonely', namespace: 'shop', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'none', intercepts: [] },
    ]);
    watcher.set('Service', 'shop', [service('shop', 'web', [{ name: 'http', port: 80, targetPort: 'http' }])]);
  }
  const tree = new WorkloadsTree(session);
  const node = (label: string): TreeNode => {
    const [ctx] = tree.getChildren();
    const ns = tree.getChildren(ctx).find((n) => n.label === 'shop');
    const found = tree.getChildren(ns).find((n) => n.label === label);
    if (found === undefined) throw new Error(`no workload ${label} in the tree`);
    return found;
  };
  return { daemon, session, host, debugHost, commands, tree, node, installs, files };
}

t.test('Connect from the view: progress, then connected', async (t) => {
  const { commands, session, host } = await setup({ connect: false, running: false });
  await commands.connect();
  t.equal(session.phase, 'connected');
  t.equal(host.progress[0]?.title, 'Connecting to the cluster');
  t.same(host.messages, [], 'no notification on success');
});

t.test('a failed connect notifies with Retry and Show Logs; Retry connects again', async (t) => {
  const { commands, session, host, daemon } = await setup({ connect: false });
  daemon.connectError = new TpError('cluster', 'cluster-unreachable', 'cannot reach the cluster');
  // The cluster answers again by the time the user clicks Retry.
  host.choices = [RETRY];
  const connect = daemon.connect.bind(daemon);
  daemon.connect = (req) => {
    const result = connect(req);
    daemon.connectError = undefined;
    return result;
  };
  await commands.connect();
  t.match(host.messages, [{ level: 'error', text: /^Cannot connect: cannot reach the cluster/, actions: [RETRY, SHOW_LOGS] }]);
  t.equal(daemon.calls.filter((c) => c.startsWith('connect')).length, 2);
  t.equal(session.phase, 'connected');
});

t.test('a connect refused for a subnet conflict warns with the hint and the setting, and stays disconnected', async (t) => {
  const { commands, session, host, daemon } = await setup({ connect: false });
  daemon.connectError = new TpError('user', 'subnet-conflict', "the cluster's service subnet 10.96.0.0/16 overlaps this workstation's route 10.96.0.0/16 (dev cni0)", {
    hint: 'pass --never-proxy 10.96.0.0/16 to leave those addresses to cni0, or connect with --outbound=false for intercepts only',
  });
  await commands.connect();
  t.match(host.messages, [
    {
      level: 'warning',
      text: /^Cannot connect: the cluster's service subnet 10\.96\.0\.0\/16 overlaps .*\(pass --never-proxy 10\.96\.0\.0\/16 .*; in VS Code: .*telepresence\.neverProxy/,
      actions: [OPEN_SETTINGS, SHOW_LOGS],
    },
  ]);
  t.equal(session.phase, 'disconnected');
});

t.test('connected without the outbound access asked for: a warning says why and what to do', async (t) => {
  const { commands, session, host, daemon } = await setup({ connect: false });
  daemon.reportsOutbound = false;
  await commands.connect();
  t.equal(session.phase, 'connected', 'intercepts work all the same');
  t.ok(session.outboundMissing);
  t.match(host.messages, [
    {
      level: 'warning',
      text: /^Connected for intercepts only: .*the kubectl-telepresence on PATH is v0\.0\.9 \(\/usr\/local\/bin\/kubectl-telepresence\).*npm install -g telepresence-ts@0\.1\.0.*telepresence\.outbound off/,
      actions: [OPEN_SETTINGS, SHOW_LOGS],
    },
  ]);
  t.ok(host.logs.some((l) => l === host.messages[0]?.text), 'and the output says the same');
});

t.test('connected with outbound access up: no notification', async (t) => {
  const { commands, session, host } = await setup({ connect: false });
  await commands.connect();
  t.notOk(session.outboundMissing);
  t.same(host.messages, []);
});

t.test('no traffic-manager: no dialog (the welcome view offers the install); installing connects', async (t) => {
  const { commands, session, host, daemon, installs } = await setup({ connect: false });
  daemon.connectError = new TpError('user', 'manager-not-installed', 'the traffic-manager is not installed');
  await commands.connect();
  t.equal(session.phase, 'no-manager');
  t.same(host.messages, []);
  await commands.installManager();
  t.same(installs, ['install']);
  t.same(host.progress.map((p) => p.title), ['Connecting to the cluster', 'Installing the traffic-manager', 'Connecting to the cluster']);
  t.equal(session.phase, 'connected');
});

t.test('Intercept… on a workload: asks, intercepts with progress, offers Debug', async (t) => {
  const { commands, host, daemon, debugHost, session, node } = await setup();
  host.answers = ['8080', ''];
  host.choices = [DEBUG];
  host.picks = ['Run server'];
  await commands.intercept(node('web'));
  t.match(daemon.specs, [{ workloadName: 'web', localPort: 8080, servicePort: 'http' }]);
  t.match(host.progress[0], { title: 'Intercepting web', lines: ['configuring agent of web', 'rolling out deployment/web: 1 of 1 new pods ready'] });
  t.match(host.messages.at(-1), { level: 'info', text: 'Intercepted web: web:80 → localhost:8080', actions: [DEBUG, OPEN_ENV_FILE] });
  t.same(debugHost.started.map((c) => c['telepresence']), [{ intercept: 'web-shop' }]);
  t.same(session.intercepts.map((ii) => ii.spec?.name), ['web-shop']);
});

t.test('Intercept… asks the daemon for an env file; Open Environment File opens the one it wrote', async (t) => {
  const s = await setup();
  s.host.answers = ['8080', ''];
  s.host.choices = [OPEN_ENV_FILE];
  await s.commands.intercept(s.node('web'));
  t.same(s.daemon.options, [{ envFile: '/store/web-shop.env' }]);
  t.same(s.host.opened, ['/store/web-shop.env']);
  t.equal(s.files.files.size, 0, 'the extension wrote nothing itself');
});

t.test('Wiretap… on a workload: asks the local port, makes a wiretap with progress, says the app still answers', async (t) => {
  const { commands, host, daemon, node } = await setup();
  host.answers = ['9090'];
  await commands.wiretap(node('web'));
  t.match(daemon.specs, [{ workloadName: 'web', localPort: 9090, servicePort: 'http', mode: 'wiretap', headers: [], httpPathPrefix: '', httpMethods: [] }]);
  t.match(host.progress[0], { title: 'Wiretapping web' });
  t.match(host.messages.at(-1), { level: 'info', text: 'Wiretapping web: a copy of web:80 → localhost:9090 (the callers are answered as before)' });
  host.answers = [undefined];
  await commands.wiretap(node('web'));
  t.equal(daemon.specs.length, 1, 'a cancelled prompt makes nothing');
});

t.test('Replace… on a workload: asks to confirm, naming the replicas and ports, then replaces with progress', async (t) => {
  const { commands, host, daemon, node } = await setup();
  host.choices = [undefined];
  await commands.replace(node('web'));
  t.match(host.messages.at(-1), { level: 'warning', text: /^Replace app of web\? It stops running in its one replica until you leave, and its ports 8080 come to the same ports on this machine\.$/, actions: ['Replace'] });
  t.same(daemon.specs, [], 'not confirmed: nothing asked of the daemon');
  host.choices = ['Replace', undefined];
  await commands.replace(node('web'));
  t.match(daemon.specs, [{ workloadName: 'web', containerName: 'app', mode: 'replace', localPort: 0, ports: [] }]);
  t.match(host.progress.at(-1), { title: 'Replacing app of web' });
});

t.test('Intercept… on a workload without ports warns with the fix', async (t) => {
  const { commands, host, node, daemon } = await setup();
  await commands.intercept(node('lonely'));
  t.match(host.messages, [{ level: 'warning', text: /has no Service port.*kubectl expose deployment\/lonely/ }]);
  t.same(daemon.specs, []);
});

t.test('a failed intercept notifies; cancelling a prompt does nothing', async (t) => {
  const { commands, host, node, daemon } = await setup();
  host.answers = [undefined];
  await commands.intercept(node('web'));
  t.same(host.messages, []);
  daemon.interceptError = new TpError('cluster', 'rollout-timeout', 'the rollout did not finish');
  host.answers = ['8080', ''];
  await commands.intercept(node('web'));
  t.match(host.messages, [{ level: 'error', text: 'Cannot intercept: the rollout did not finish', actions: [RETRY, SHOW_LOGS] }]);
});

t.test('Leave on an intercept node, or picked from the palette', async (t) => {
  const { commands, host, daemon, session, tree, node } = await setup();
  host.answers = ['8080', ''];
  await commands.intercept(node('web'));
  await settle();
  const interceptRow = tree.getChildren(node('web')).find((n) => n.kind === 'intercept');
  t.ok(interceptRow, 'the intercept is in the tree');
  await commands.leave(interceptRow);
  t.ok(daemon.calls.includes('leave web-shop'));
  t.same(session.intercepts, []);
  await commands.leave(undefined);
  t.match(host.messages.at(-1), { level: 'warning', text: /there are no intercepts/ });
});

t.test('Disconnect quits the daemon', async (t) => {
  const { commands, daemon, session } = await setup();
  await commands.disconnect();
  t.ok(daemon.calls.includes('quit'));
  t.equal(session.phase, 'disconnected');
});
