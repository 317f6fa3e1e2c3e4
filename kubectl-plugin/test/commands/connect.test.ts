import t from 'tap';
import { TpError } from '@telepresence-ts/core';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';

t.test('connect starts the daemon and connects it with the kube flags', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['connect', '--context', 'ctx2', '--manager-namespace', 'tp-x']);
  t.equal(res.code, 0);
  t.ok(env.running, 'the daemon was started');
  t.ok(env.daemon.calls.includes('connect ctx2 tp-x'));
  t.matchSnapshot(res.stdout, 'text');
  t.equal(res.stderr, '');
});

t.test('connect -o json', async (t) => {
  const res = await runCli(fakeEnv(), ['connect', '-o', 'json']);
  t.matchSnapshot(JSON.parse(res.stdout), 'json');
});

t.test('a failed connect prints the error and hint, with the category exit code', async (t) => {
  const env = fakeEnv();
  env.daemon.failWith = new TpError('user', 'manager-not-installed', 'the traffic-manager is not installed in namespace tp-system of context kind-tp', { hint: 'run: kubectl telepresence install' });
  const res = await runCli(env, ['connect']);
  t.equal(res.code, 2);
  t.equal(res.stdout, '');
  t.equal(res.stderr, 'telepresence: the traffic-manager is not installed in namespace tp-system of context kind-tp\nhint: run: kubectl telepresence install\n');
});

t.test('a daemon of another version is refused with a hint to quit it', async (t) => {
  const env = fakeEnv();
  env.deps = { ...env.deps, version: '9.9.9' };
  const res = await runCli(env, ['connect']);
  t.equal(res.code, 3);
  t.equal(res.stderr, 'telepresence: the running daemon is v1.2.3 but this client is v9.9.9\nhint: run: kubectl telepresence quit (then run the command again)\n');
});

t.test('kubeconfig paths reach the daemon absolute, with the caller\'s $KUBECONFIG', async (t) => {
  const env = fakeEnv();
  await runCli(env, ['connect', '--kubeconfig', 'k.yaml', '-n', 'apps']);
  t.strictSame(env.daemon.lastConnect, {
    kube: { kubeconfig: '/home/alice/k.yaml', context: '', namespace: 'apps', kubeconfigEnv: '/home/alice/rel/a.yaml:/abs/b.yaml' },
    managerNamespace: 'tp-system',
    product: 'cli',
    outbound: { disabled: false, alsoProxy: [], neverProxy: [] },
  });
});

t.test('connect passes the outbound flags on', async (t) => {
  const env = fakeEnv();
  await runCli(env, ['connect', '--also-proxy', '172.30.0.0/24', '--never-proxy', '10.96.4.0/24', '--never-proxy', '10.96.5.0/24']);
  const last = (): { outbound?: { disabled: boolean } } | undefined => env.daemon.lastConnect as { outbound?: { disabled: boolean } } | undefined;
  t.strictSame(last()?.outbound, { disabled: false, alsoProxy: ['172.30.0.0/24'], neverProxy: ['10.96.4.0/24', '10.96.5.0/24'] });
  await runCli(env, ['connect', '--outbound=false']);
  t.equal(last()?.outbound?.disabled, true);
});
