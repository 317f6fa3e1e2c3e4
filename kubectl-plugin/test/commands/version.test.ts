import t from 'tap';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';
import { run } from '../../src/cli.js';
import { formatVersionText, versionReport } from '../../src/commands/version.js';
import { BufferIo } from '../fixtures/buffer-io.js';

const cases: ReadonlyArray<{ name: string; args: string[]; stdout: string }> = [
  { name: 'text by default', args: ['version'], stdout: 'Client: v1.2.3\n' },
  { name: '--output text', args: ['version', '--output', 'text'], stdout: 'Client: v1.2.3\n' },
  { name: '--output json', args: ['version', '--output', 'json'], stdout: '{"client":{"version":"1.2.3"}}\n' },
  { name: '-o json before the verb', args: ['-o', 'json', 'version'], stdout: '{"client":{"version":"1.2.3"}}\n' },
  { name: 'global kube options are accepted', args: ['version', '--context', 'kind', '-n', 'default', '--kubeconfig', '/tmp/k'], stdout: 'Client: v1.2.3\n' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const io = new BufferIo();
    const code = await run(c.args, { ...fakeEnv({ running: false }).deps, io });
    t.equal(code, 0, 'exit code');
    t.equal(io.stdout, c.stdout, 'stdout');
    t.equal(io.stderr, '', 'stderr');
  });
}

t.test('the JSON report has exactly the documented shape', (t) => {
  t.strictSame(versionReport('0.1.0'), { client: { version: '0.1.0' } });
  t.equal(formatVersionText(versionReport('0.1.0')), 'Client: v0.1.0\n');
  t.end();
});

t.test('with a daemon running and connected, version shows the daemon, the manager and the agent image it injects', async (t) => {
  const env = fakeEnv({ running: true });
  const res = await runCli(env, ['version']);
  t.equal(res.stdout, 'Client: v1.2.3\nDaemon: v1.2.3\nTraffic manager: v1.2.3\nTraffic agent image: tp-local/traffic-agent:1.2.3\n');
  const json = await runCli(fakeEnv({ running: true }), ['version', '-o', 'json']);
  t.strictSame(JSON.parse(json.stdout), {
    client: { version: '1.2.3' },
    daemon: { version: '1.2.3' },
    manager: { version: '1.2.3', agentImage: 'tp-local/traffic-agent:1.2.3' },
  });
});

t.test('version never starts a daemon', async (t) => {
  const env = fakeEnv({ running: false });
  await runCli(env, ['version']);
  t.equal(env.running, false);
});
