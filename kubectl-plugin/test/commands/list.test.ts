import t from 'tap';
import { ConnectionState, TpError } from '@telepresence-ts/core';
import { fakeEnv, interceptInfo, runCli } from '../fixtures/fake-deps.js';

function withWorkloads() {
  const env = fakeEnv();
  const ii = interceptInfo({ name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] });
  env.daemon.listResponse = {
    workloads: [
      { name: 'echo', namespace: 'default', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [ii] },
      { name: 'db', namespace: 'default', kind: 'StatefulSet', readyReplicas: 0, replicas: 1, agentState: 'none', intercepts: [] },
    ],
  };
  return env;
}

t.test('list prints a table', async (t) => {
  const res = await runCli(withWorkloads(), ['list']);
  t.equal(res.code, 0);
  t.matchSnapshot(res.stdout, 'text');
});

t.test('list -o json', async (t) => {
  t.matchSnapshot(JSON.parse((await runCli(withWorkloads(), ['list', '-o', 'json'])).stdout), 'json');
});

t.test('list with no workloads', async (t) => {
  t.equal((await runCli(fakeEnv(), ['list'])).stdout, 'No workloads (Deployments, ReplicaSets, StatefulSets) found\n');
});

t.test('list connects first when the daemon is not connected, and passes --namespace', async (t) => {
  const env = fakeEnv({ running: false });
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED };
  await runCli(env, ['list', '-n', 'apps']);
  t.strictSame(env.daemon.calls, ['version', 'status', 'connect  tp-system', 'list apps']);
});

t.test('list keeps an existing connection when no other context is asked for', async (t) => {
  const env = fakeEnv();
  await runCli(env, ['list']);
  t.strictSame(env.daemon.calls, ['version', 'status', 'list ']);
});

t.test('list shows each intercept\'s headers and owner', async (t) => {
  const env = fakeEnv();
  const spec = { name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  const alice = { ...interceptInfo({ ...spec, headers: [{ name: 'x-user', value: 'alice' }] }) };
  const bob = { ...interceptInfo({ ...spec, localPort: 9090, headers: [{ name: 'x-user', value: 'bob' }, { name: 'x-team', value: 'red' }] }), id: 'sess-2:echo-default', clientName: 'bob@desk' };
  env.daemon.listResponse = { workloads: [{ name: 'echo', namespace: 'default', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [alice, bob] }] };
  const text = (await runCli(env, ['list'])).stdout;
  t.match(text, 'echo-default by alice@laptop [x-user=alice] -> localhost:8080 (ACTIVE), echo-default by bob@desk [x-user=bob x-team=red] -> localhost:9090 (ACTIVE)');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['list', '-o', 'json'])).stdout) as { workloads: Array<{ intercepts: Array<{ client: string; headers: unknown }> }> };
  t.strictSame(
    json.workloads[0]?.intercepts.map((i) => [i.client, i.headers]),
    [
      ['alice@laptop', [{ name: 'x-user', value: 'alice' }]],
      ['bob@desk', [{ name: 'x-user', value: 'bob' }, { name: 'x-team', value: 'red' }]],
    ],
  );
});

t.test('list shows a path prefix and methods as the intercept\'s filter', async (t) => {
  const env = fakeEnv();
  const spec = { name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'], mode: '', ports: [] };
  const paths = interceptInfo(spec);
  const posts = { ...interceptInfo({ ...spec, localPort: 9090, httpPathPrefix: '', httpMethods: ['POST'], headers: [{ name: 'x-user', value: 'bob' }] }), id: 'sess-2:echo-default', clientName: 'bob@desk' };
  env.daemon.listResponse = { workloads: [{ name: 'echo', namespace: 'default', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [paths, posts] }] };
  const text = (await runCli(env, ['list'])).stdout;
  t.match(text, 'echo-default by alice@laptop [/api/* GET,POST] -> localhost:8080 (ACTIVE), echo-default by bob@desk [x-user=bob POST] -> localhost:9090 (ACTIVE)');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['list', '-o', 'json'])).stdout) as { workloads: Array<{ intercepts: Array<Record<string, unknown>> }> };
  t.match(json.workloads[0]?.intercepts, [
    { headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] },
    { headers: [{ name: 'x-user', value: 'bob' }], httpPathPrefix: '', httpMethods: ['POST'] },
  ]);
});

t.test('a command that connects on its way goes on without outbound access when only that fails, and says so', async (t) => {
  const env = withWorkloads();
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED };
  env.daemon.outboundFailure = new TpError('user', 'subnet-conflict', "the cluster's pod subnet 10.244.0.0/24 overlaps this workstation's route 10.244.0.0/24 (dev cni0)", {
    hint: 'pass --never-proxy 10.244.0.0/24',
  });
  const res = await runCli(env, ['list']);
  t.equal(res.code, 0);
  t.match(res.stdout, /echo/);
  t.match(res.stderr, /^note: connected without outbound access: the cluster's pod subnet .* overlaps .*\nhint: pass --never-proxy 10\.244\.0\.0\/24\n$/);
  t.match(env.daemon.lastConnect, { outbound: { disabled: true } });
});

t.test('outbound access held by another connection of this workstation: the command goes on without it', async (t) => {
  const env = withWorkloads();
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED };
  env.daemon.outboundFailure = new TpError('user', 'outbound-busy', 'outbound access is already up for another connection of this workstation', {
    hint: 'run `kubectl telepresence quit` to end the other connection first',
  });
  const res = await runCli(env, ['list']);
  t.equal(res.code, 0);
  t.match(res.stdout, /echo/);
  t.match(res.stderr, /^note: connected without outbound access: outbound access is already up for another connection/);
  t.match(env.daemon.lastConnect, { outbound: { disabled: true } });
});

t.test('any other connect failure still fails the command', async (t) => {
  const env = withWorkloads();
  env.daemon.status_ = { ...env.daemon.status_, state: ConnectionState.DISCONNECTED };
  env.daemon.outboundFailure = new TpError('cluster', 'manager-unreachable', 'cannot reach the traffic-manager');
  const res = await runCli(env, ['list']);
  t.equal(res.code, 4);
  t.match(res.stderr, /cannot reach the traffic-manager/);
});

t.test('list and status show the traffic stats an engagement has, text and JSON', async (t) => {
  const env = fakeEnv();
  const spec = { name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  const ii = { ...interceptInfo(spec), stats: { connections: 12, requests: 3, droppedConnections: 2, droppedBytes: 4096 } };
  const quiet = { ...interceptInfo({ ...spec, name: 'other' }), stats: { connections: 0, requests: 0, droppedConnections: 0, droppedBytes: 0 } };
  env.daemon.listResponse = { workloads: [{ name: 'echo', namespace: 'default', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [ii, quiet] }] };
  const text = (await runCli(env, ['list'])).stdout;
  t.match(text, 'echo-default by alice@laptop -> localhost:8080 (ACTIVE) (12 connections, 3 requests, 2 dropped: 4.0 KiB), other by alice@laptop -> localhost:8080 (ACTIVE)\n');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['list', '-o', 'json'])).stdout) as { workloads: Array<{ intercepts: Array<Record<string, unknown>> }> };
  t.strictSame(json.workloads[0]?.intercepts[0]?.stats, { connections: 12, requests: 3, droppedConnections: 2, droppedBytes: 4096 });
  env.io.stdout = '';
  env.daemon.intercepts_ = [ii];
  t.match((await runCli(env, ['status'])).stdout, 'echo-default: echo all requests -> localhost:8080, by alice@laptop (ACTIVE) (12 connections, 3 requests, 2 dropped: 4.0 KiB)');
});
