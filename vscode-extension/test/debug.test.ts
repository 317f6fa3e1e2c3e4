import t from 'tap';
import { DebugIntegration, INTERCEPT_MARKER, formatEnvFile, interceptEnvironment } from '../src/debug.js';
import type { LaunchConfig, Settings } from '../src/host.js';
import { Session } from '../src/session.js';
import { FakeDebugHost, FakeFileStore, FakeHost } from './fixtures/fake-host.js';
import { FakeDaemon, FakeWatcher, deployment, service, sessionDeps, settle } from './fixtures/fake-core.js';

const RUN: LaunchConfig = { type: 'node', request: 'launch', name: 'Run server', program: '${workspaceFolder}/server.js' };

async function setup(options: { leave?: boolean; connect?: boolean } = {}) {
  const daemon = new FakeDaemon();
  const watcher = new FakeWatcher();
  const session = new Session(sessionDeps(daemon, watcher));
  const host = new FakeHost();
  const debugHost = new FakeDebugHost([RUN, { type: 'telepresence', request: 'launch', name: 'In cluster', configuration: 'Run server', workload: 'web' }]);
  const files = new FakeFileStore();
  const settings: Settings = { kubeconfig: '', context: '', namespace: '', managerNamespace: '', leaveInterceptOnDebugEnd: options.leave ?? true, outbound: true, alsoProxy: [], neverProxy: [], cliPath: '' };
  const debug = new DebugIntegration({ session, host, debug: debugHost, settings: () => settings, files });
  if (options.connect ?? true) {
    await session.connect();
    await settle();
    session.workloads('shop');
    watcher.set('Deployment', 'shop', [deployment('shop', 'web', { env: { GREETING: 'from-pod-template' } })]);
    watcher.set('Service', 'shop', [service('shop', 'web', [{ name: 'http', port: 80, targetPort: 'http' }])]);
  }
  return { daemon, session, host, debugHost, files, debug };
}

t.test('a configuration without "telepresence" passes through untouched', async (t) => {
  const { debug, daemon } = await setup();
  t.equal(await debug.resolve(RUN), RUN);
  t.same(daemon.specs, []);
});

t.test('"workload" intercepts it on its container port and injects its environment', async (t) => {
  const { debug, daemon, host } = await setup();
  const resolved = await debug.resolve({ ...RUN, env: { OWN: 'mine', GREETING: 'overridden' }, telepresence: { workload: 'web' } });
  t.match(daemon.specs, [{ workloadName: 'web', namespace: 'shop', servicePort: '', serviceName: 'web', containerName: 'app', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] }]);
  t.same(resolved['env'], { GREETING: 'overridden', TELEPRESENCE_INTERCEPT_ID: 'session-1:web-shop', TELEPRESENCE_CONTAINER: 'app', OWN: 'mine' }, "the configuration's own env wins");
  t.equal(resolved[INTERCEPT_MARKER], 'web-shop');
  t.equal(host.progress[0]?.title, 'Intercepting web');
  t.equal(host.progress[0]?.lines.length, 2, 'progress lines are shown');
});

t.test("the daemon's environment is used when it reports one", async (t) => {
  const { debug, daemon } = await setup();
  daemon.remotes = [{ name: 'web-shop', environment: { FROM_POD: 'yes' }, mountPoint: '', mounts: [], envFile: '', envJson: '', traffic: 'direct', trafficReason: '' }];
  await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
  daemon.emit();
  const resolved = await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
  t.same(resolved['env'], { FROM_POD: 'yes', TELEPRESENCE_INTERCEPT_ID: 'session-1:web-shop', TELEPRESENCE_CONTAINER: 'app' });
  t.equal(daemon.specs.length, 1, 'the existing intercept of the workload is reused');
});

t.test('"intercept" names an existing intercept; an unknown one is an error naming the known ones', async (t) => {
  const { debug, daemon } = await setup();
  await debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 3000, headers: 'x-user=me' } });
  t.match(daemon.specs[0], { localPort: 3000, headers: [{ name: 'x-user', value: 'me' }] });
  const resolved = await debug.resolve({ ...RUN, telepresence: { intercept: 'web-shop' } });
  t.equal(resolved[INTERCEPT_MARKER], 'web-shop');
  await t.rejects(debug.resolve({ ...RUN, telepresence: { intercept: 'nope' } }), { code: 'unknown-intercept', hint: 'intercepts: web-shop' });
});

t.test('a path prefix and methods make a personal intercept; malformed ones are refused before the daemon is asked', async (t) => {
  const { debug, daemon } = await setup();
  await debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 3000, httpPathPrefix: '/api/', httpMethods: 'get, POST,get' } });
  t.match(daemon.specs[0], { localPort: 3000, headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] });
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ httpPathPrefix: 'api/' }, /"httpPathPrefix" of launch configuration "Run server": .*"\/"/],
    [{ httpMethods: ['GET', 'NOT A METHOD'] }, /"httpMethods" of launch configuration "Run server": /],
    [{ httpMethods: 7 }, /"httpMethods" .*not a string or a list of strings/],
  ];
  for (const [options, message] of bad) {
    await t.rejects(debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 3001, ...options } }), { code: 'bad-launch-config', message }, JSON.stringify(options));
  }
  t.equal(daemon.specs.length, 1, 'none of them reached the daemon');
});

t.test('an existing intercept with another local port is an error, not a silent mismatch', async (t) => {
  const { debug, daemon } = await setup();
  await debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 3000 } });
  t.equal((await debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 3000 } }))[INTERCEPT_MARKER], 'web-shop', 'the same port reuses it');
  await t.rejects(debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 4000 } }), { code: 'intercept-port-mismatch', hint: /localPort" to 3000/ });
  t.equal(daemon.specs.length, 1);
});

t.test('an empty "telepresence" uses the one intercept there is, and asks for a workload otherwise', async (t) => {
  const { debug } = await setup();
  await t.rejects(debug.resolve({ ...RUN, telepresence: {} }), { code: 'bad-launch-config' });
  await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
  t.equal((await debug.resolve({ ...RUN, telepresence: {} }))[INTERCEPT_MARKER], 'web-shop');
  await t.rejects(debug.resolve({ ...RUN, telepresence: 'web' }), { code: 'bad-launch-config' });
});

t.test('resolving connects first when not connected', async (t) => {
  const { debug, session, daemon } = await setup({ connect: false });
  await debug.resolve({ ...RUN, telepresence: { workload: 'web', localPort: 8080 } });
  t.equal(session.phase, 'connected');
  t.equal(daemon.specs.length, 1);
});

t.test('the end of the debug session leaves its intercept, or keeps it, as the setting says', async (t) => {
  for (const leave of [true, false]) {
    const { debug, daemon, session } = await setup({ leave });
    const resolved = await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
    debug.started('child', resolved, true);
    debug.started('top', resolved, false);
    await debug.ended('child');
    t.equal(session.intercepts.length, 1, 'a child session ending changes nothing');
    await debug.ended('top');
    t.equal(daemon.calls.includes('leave web-shop'), leave, `leaveInterceptOnEnd=${leave}`);
    t.equal(session.intercepts.length, leave ? 0 : 1);
  }
});

t.test('a telepresence configuration starts the one it names with its options', async (t) => {
  const { debug, debugHost } = await setup();
  const result = await debug.resolveWrapper({ type: 'telepresence', request: 'launch', name: 'In cluster', configuration: 'Run server', workload: 'web', localPort: 8080 });
  t.equal(result, undefined, 'nothing is started for the wrapper itself');
  t.same(debugHost.started, [{ ...RUN, telepresence: { workload: 'web', localPort: 8080 } }]);
  await t.rejects(debug.resolveWrapper({ type: 'telepresence', request: 'launch', name: 'x', configuration: 'missing' }), { code: 'unknown-launch-config' });
});

t.test('Debug on an intercept picks a launch configuration and starts it with the intercept', async (t) => {
  const { debug, debugHost, host, session } = await setup();
  await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
  host.picks = ['Run server'];
  await debug.debugIntercept(session.intercepts[0]!);
  t.same(host.prompts.at(-1)?.options, ['Run server'], 'telepresence configurations are not offered');
  t.same(debugHost.started, [{ ...RUN, telepresence: { intercept: 'web-shop' } }]);
  debugHost.configs = [];
  await t.rejects(debug.debugIntercept(session.intercepts[0]!), { code: 'no-launch-config', hint: /port 8080/ });
});

t.test("the environment file: the daemon's when it wrote one, else one written from what is known", async (t) => {
  const { debug, daemon, host, files, session } = await setup();
  await debug.resolve({ ...RUN, telepresence: { workload: 'web' } });
  const ii = session.intercepts[0]!;
  await debug.openEnvironmentFile(ii);
  t.same(host.opened, ['/store/web-shop.env']);
  t.equal(files.files.get('/store/web-shop.env'), 'GREETING=from-pod-template\nTELEPRESENCE_CONTAINER=app\nTELEPRESENCE_INTERCEPT_ID=session-1:web-shop\n');
  daemon.remotes = [{ name: 'web-shop', environment: {}, mountPoint: '', mounts: [], envFile: '/home/me/web.env', envJson: '', traffic: 'direct', trafficReason: '' }];
  daemon.emit();
  await debug.openEnvironmentFile(ii);
  t.same(host.opened.at(-1), '/home/me/web.env');
});

t.test('formatEnvFile quotes values that need it', (t) => {
  t.equal(formatEnvFile({ B: 'two words', A: 'plain/path:1', C: 'a"b' }), 'A=plain/path:1\nB="two words"\nC="a\\"b"\n');
  t.end();
});

t.test('interceptEnvironment without anything known still names the intercept', (t) => {
  const env = interceptEnvironment({ id: 's:x', spec: undefined, target: undefined, clientSessionId: 's', clientName: '', disposition: 0, message: '', createdAt: 0, stats: undefined }, undefined, undefined);
  t.same(env, { TELEPRESENCE_INTERCEPT_ID: 's:x', TELEPRESENCE_CONTAINER: '' });
  t.end();
});
