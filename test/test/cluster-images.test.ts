import t from 'tap';
import { findRepoRoot, prepareImage } from '../src/cluster-images.js';
import { FakeRunner } from './fixtures/fake-runner.js';

t.test('findRepoRoot walks up to the directory holding test/cluster/up.sh', async (t) => {
  const exists = (p: string): boolean => p === '/repo/test/cluster/up.sh';
  t.equal(findRepoRoot('/repo', exists), '/repo');
  t.equal(findRepoRoot('/repo/test/e2e', exists), '/repo');
  t.throws(() => findRepoRoot('/elsewhere/x', exists), /cannot find the repository root .* above \/elsewhere\/x/);
});

t.test('findRepoRoot finds this repository', async (t) => {
  t.match(findRepoRoot(), /\S/);
});

t.test('prepareImage builds, then loads, from the repository root with the kubeconfig', async (t) => {
  const runner = new FakeRunner();
  await prepareImage({ repoRoot: '/repo', imageDir: 'echo', image: 'tp-local/echo:1', kubeconfig: '/kc', runner });
  t.same(
    runner.runs.map((r) => [r.command, ...r.args]),
    [
      ['bash', 'test/cluster/images/build.sh', 'echo'],
      ['bash', 'test/cluster/load-image.sh', 'tp-local/echo:1'],
    ],
  );
  for (const r of runner.runs) {
    t.equal(r.options.cwd, '/repo');
    t.equal(r.options.env?.['KUBECONFIG'], '/kc');
    t.ok((r.options.timeoutMs ?? 0) > 0, 'bounded');
  }
});

t.test('prepareImage stops at a failing step and shows its output', async (t) => {
  const runner = new FakeRunner(() => ({ exitCode: 2, stdout: 'building...\n', stderr: 'docker: not found\n' }));
  await t.rejects(prepareImage({ repoRoot: '/repo', imageDir: 'echo', image: 'tp-local/echo:1', kubeconfig: '/kc', runner }), {
    message: /^bash test\/cluster\/images\/build.sh echo failed \(exit 2\):\nbuilding\.\.\.\ndocker: not found/,
  });
  t.equal(runner.runs.length, 1, 'load-image.sh is not attempted');
});

t.test('prepareImage on a kind cluster tells load-image.sh so', async (t) => {
  const runner = new FakeRunner();
  await prepareImage({ repoRoot: '/repo', imageDir: 'echo', image: 'tp-local/echo:1', kubeconfig: '/kc', cluster: 'kind', runner });
  t.same(
    runner.runs.map((r) => r.options.env?.['TP_CLUSTER']),
    ['kind', 'kind'],
  );
});
