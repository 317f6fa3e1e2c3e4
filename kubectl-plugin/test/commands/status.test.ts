import t from 'tap';
import { ConnectionState } from '@telepresence-ts/core';
import { fakeEnv, interceptInfo, runCli } from '../fixtures/fake-deps.js';

t.test('status without a daemon does not start one', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['status']);
  t.equal(res.stdout, 'Daemon: not running\n');
  t.equal(env.running, false);
  t.strictSame(JSON.parse((await runCli(fakeEnv({ running: false }), ['status', '-o', 'json'])).stdout), { daemon: { running: false } });
});

t.test('status when connected', async (t) => {
  t.matchSnapshot((await runCli(fakeEnv(), ['status'])).stdout, 'text');
  t.matchSnapshot(JSON.parse((await runCli(fakeEnv(), ['status', '-o', 'json'])).stdout), 'json');
});

t.test('status when the last connect failed', async (t) => {
  const env = fakeEnv();
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED, error: 'the traffic-manager in namespace tp-system has no ready pod (1 pods)' };
  t.matchSnapshot((await runCli(env, ['status'])).stdout, 'text');
});

t.test('status shows the daemon\'s intercepts with their headers and owner', async (t) => {
  const env = fakeEnv();
  const spec = { name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [{ name: 'x-user', value: 'alice' }], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  env.daemon.intercepts_ = [interceptInfo(spec), interceptInfo({ ...spec, name: 'api', workloadName: 'api', localPort: 9000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] })];
  const text = (await runCli(env, ['status'])).stdout;
  t.match(text, 'Intercepts:\n   echo-default: echo requests with [x-user=alice] -> localhost:8080, by alice@laptop (ACTIVE)\n   api: api all requests -> localhost:9000, by alice@laptop (ACTIVE)\n');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['status', '-o', 'json'])).stdout) as { intercepts: Array<{ name: string; client: string; headers: unknown }> };
  t.strictSame(
    json.intercepts.map((i) => [i.name, i.client, i.headers]),
    [
      ['echo-default', 'alice@laptop', [{ name: 'x-user', value: 'alice' }]],
      ['api', 'alice@laptop', []],
    ],
  );
});

t.test('status does not ask for intercepts while not connected', async (t) => {
  const env = fakeEnv();
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED };
  const res = await runCli(env, ['status', '-o', 'json']);
  t.notOk('intercepts' in JSON.parse(res.stdout));
  t.notOk(env.daemon.calls.includes('watchState'));
});

t.test('status names the intercepts lost when the traffic-manager restarted, and why', async (t) => {
  const env = fakeEnv();
  const lost = { name: 'orders-default', reason: 'deployment orders not found in namespace default' };
  env.daemon.status_ = { ...env.daemon.status_, lostIntercepts: [lost], error: 'intercepts lost after the traffic-manager restarted: orders-default' };
  const text = (await runCli(env, ['status'])).stdout;
  t.match(text, 'Intercepts: none\n   orders-default: LOST after the traffic-manager restarted: deployment orders not found in namespace default\n');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['status', '-o', 'json'])).stdout) as { connection: { lostIntercepts: unknown } };
  t.strictSame(json.connection.lostIntercepts, [lost]);
});
