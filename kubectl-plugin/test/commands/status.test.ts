import t from 'tap';
import { ConnectionState } from '@telepresence-ts/core';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';

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
