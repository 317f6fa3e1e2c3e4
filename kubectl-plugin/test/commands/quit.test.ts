import t from 'tap';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';

t.test('quit stops a running daemon', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['quit']);
  t.strictSame(env.daemon.calls, ['quit']);
  t.equal(res.stdout, 'Telepresence daemon quit\n');
});

t.test('quit without a daemon neither starts one nor fails', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['quit', '-o', 'json']);
  t.equal(res.code, 0);
  t.equal(env.running, false);
  t.strictSame(JSON.parse(res.stdout), { quit: false });
});
