import t from 'tap';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';
import { FakeKubeForCli } from '../fixtures/fake-kube-cli.js';

t.test('uninstall needs exactly one mode', async (t) => {
  for (const args of [['uninstall'], ['uninstall', '--all-agents', '--everything']]) {
    const res = await runCli(fakeEnv(), args);
    t.equal(res.code, 2, args.join(' '));
    t.match(res.stderr, /hint: pass one of --agent <workload>\.\.\., --all-agents, --everything/);
  }
});

t.test('uninstall --agent goes through the manager', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['uninstall', '--agent', 'echo', 'web']);
  t.ok(env.daemon.calls.includes('uninstallAgents echo,web all=false allNamespaces=false'));
  t.equal(res.stdout, 'Removed the agents of default/echo, default/web\n');
});

t.test('uninstall --all-agents', async (t) => {
  const env = fakeEnv();
  await runCli(env, ['uninstall', '--all-agents']);
  t.ok(env.daemon.calls.includes('uninstallAgents  all=true allNamespaces=false'));
});

t.test('uninstall --everything removes agents everywhere, deletes, then stops the daemon', async (t) => {
  const kube = new FakeKubeForCli();
  const env = fakeEnv({ kube });
  const res = await runCli(env, ['uninstall', '--everything', '-o', 'json']);
  t.equal(res.code, 0, res.stderr);
  t.ok(env.daemon.calls.includes('uninstallAgents  all=true allNamespaces=true'));
  t.equal(env.daemon.calls.at(-1), 'quit');
  t.strictSame(JSON.parse(res.stdout), { agentsRemoved: [], deleted: ['Namespace/tp-system'] });
});
