import t from 'tap';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';
import { FakeKubeForCli } from '../fixtures/fake-kube-cli.js';

t.test('install applies, waits and reports; progress goes to stderr', async (t) => {
  const kube = new FakeKubeForCli();
  const res = await runCli(fakeEnv({ kube }), ['install', '--agent-image', 'me/agent:dev']);
  t.equal(res.code, 0, res.stderr);
  t.equal(kube.applied.length, 13);
  t.matchSnapshot(res.stdout, 'text');
  t.matchSnapshot(res.stderr, 'progress');
});

t.test('install -o json', async (t) => {
  const res = await runCli(fakeEnv({ kube: new FakeKubeForCli() }), ['install', '--manager-namespace', 'tp-x', '--no-wait', '-o', 'json']);
  const out = JSON.parse(res.stdout) as { namespace: string; images: unknown; applied: string[]; dryRun: boolean };
  t.equal(out.namespace, 'tp-x');
  t.strictSame(out.images, { manager: 'tp-local/traffic-manager:1.2.3', injector: 'tp-local/agent-injector:1.2.3', agent: 'tp-local/traffic-agent:1.2.3' });
  t.equal(out.applied.length, 13);
  t.equal(out.dryRun, false);
});
