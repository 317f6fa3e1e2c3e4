import t from 'tap';
import { buildSpec, formatInterceptText, parsePortFlag } from '../../src/commands/intercept.js';
import { fakeEnv, interceptInfo, runCli } from '../fixtures/fake-deps.js';

const ports: ReadonlyArray<{ value: string; want?: { localPort: number; servicePort: string } }> = [
  { value: '8080', want: { localPort: 8080, servicePort: '' } },
  { value: '8080:http', want: { localPort: 8080, servicePort: 'http' } },
  { value: '8080:80', want: { localPort: 8080, servicePort: '80' } },
  { value: '0' },
  { value: '70000' },
  { value: 'http' },
  { value: '8080:' },
  { value: '8080:a:b' },
];

for (const c of ports) {
  t.test(`--port ${c.value}`, (t) => {
    if (c.want === undefined) {
      t.throws(() => parsePortFlag(c.value), { code: 'bad-port', category: 'user', hint: /--port 8080:http/ });
    } else {
      t.strictSame(parsePortFlag(c.value), c.want);
    }
    t.end();
  });
}

t.test('flags become the spec', (t) => {
  const spec = buildSpec({ workload: 'echo', port: '9000:grpc', service: 'echo-svc', container: 'app', name: 'mine', namespace: 'apps', context: undefined, kubeconfig: undefined, output: 'text' });
  t.strictSame(spec, { name: 'mine', namespace: 'apps', workloadName: 'echo', workloadKind: '', serviceName: 'echo-svc', servicePort: 'grpc', containerName: 'app', localPort: 9000, headers: [] });
  t.end();
});

t.test('intercept: progress on stderr, the result on stdout', async (t) => {
  const res = await runCli(fakeEnv(), ['intercept', 'echo', '--port', '8080:http']);
  t.equal(res.code, 0);
  t.equal(res.stderr, 'preparing deployment/echo\ndeployment/echo: 1 of 1 pods ready with the agent\n');
  t.matchSnapshot(res.stdout, 'text');
});

t.test('intercept -o json', async (t) => {
  const res = await runCli(fakeEnv(), ['intercept', 'echo', '-p', '8080', '-o', 'json']);
  t.matchSnapshot(JSON.parse(res.stdout), 'json');
});

t.test('a bad --port is refused before the daemon is asked', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['intercept', 'echo', '--port', 'x']);
  t.equal(res.code, 2);
  t.equal(env.running, false);
  t.match(res.stderr, /^telepresence: invalid --port "x"\nhint: /);
});

t.test('--port is required', async (t) => {
  const res = await runCli(fakeEnv(), ['intercept', 'echo']);
  t.equal(res.code, 2);
  t.match(res.stderr, /Missing required argument: port/);
});

t.test('an intercept without a resolved target prints no target lines', (t) => {
  const text = formatInterceptText({ ...interceptInfo({ name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [] }), target: undefined });
  t.notMatch(text, /Service port|Container/);
  t.match(text, /Destination {4}: 127\.0\.0\.1:8080/);
  t.end();
});
