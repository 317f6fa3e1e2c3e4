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

t.test('install --registry pulls all three images from there, tagged with the CLI version', async (t) => {
  const res = await runCli(fakeEnv({ kube: new FakeKubeForCli() }), ['install', '--registry', 'registry.example.com:5000/team/', '--no-wait', '-o', 'json']);
  t.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { images: unknown };
  t.strictSame(out.images, {
    manager: 'registry.example.com:5000/team/traffic-manager:1.2.3',
    injector: 'registry.example.com:5000/team/agent-injector:1.2.3',
    agent: 'registry.example.com:5000/team/traffic-agent:1.2.3',
  });
});

for (const [registry, why] of [
  ['https://registry.example.com/team', 'it has a scheme'],
  ['registry.example.com/team/traffic-agent:1.0', 'it has a tag or digest'],
  ['Registry Example', 'it is not a host[:port][/path] of lower-case names'],
] as const) {
  t.test(`install --registry ${registry}: refused before the cluster is touched`, async (t) => {
    const kube = new FakeKubeForCli();
    const res = await runCli(fakeEnv({ kube }), ['install', '--registry', registry]);
    t.equal(res.code, 2, 'a user error');
    t.match(res.stderr, `--registry "${registry}" is not an image registry: ${why}`);
    t.match(res.stderr, /hint: +give the host and path the images were pushed under/);
    t.equal(kube.applied.length, 0, 'nothing applied');
  });
}
