import t from 'tap';
import { buildSpec, formatInterceptText, parseHeaderFlags, parsePortFlag } from '../../src/commands/intercept.js';
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
  t.strictSame(spec, { name: 'mine', namespace: 'apps', workloadName: 'echo', workloadKind: '', serviceName: 'echo-svc', servicePort: 'grpc', containerName: 'app', localPort: 9000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '' });
  t.end();
});

t.test('intercept: progress on stderr, the result on stdout', async (t) => {
  const res = await runCli(fakeEnv(), ['intercept', 'echo', '--port', '8080:http']);
  t.equal(res.code, 0);
  t.equal(res.stderr, 'preparing deployment/echo\ndeployment/echo: 1 of 1 pods ready with the agent\n');
  t.matchSnapshot(res.stdout, 'text');
});

t.test('intercept: a note when nothing listens on the local port yet', async (t) => {
  const env = fakeEnv();
  env.refusedPorts.add(8080);
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080:http']);
  t.equal(res.code, 0, 'the intercept stands');
  t.match(res.stderr, /\nnote: nothing listens on localhost:8080 \(127\.0\.0\.1 or ::1\) yet; intercepted connections are refused until your service does\n$/);
  t.match(res.stdout, /Destination {4}: localhost:8080/, 'the result as usual');
});

t.test('intercept: no such note when something listens', async (t) => {
  const env = fakeEnv();
  env.refusedPorts.add(9999);
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080:http']);
  t.notMatch(res.stderr, /note:/);
});

t.test('an intercept whose container port other Service ports lead to says it takes theirs too', (t) => {
  const info = interceptInfo({ name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: 'Deployment', serviceName: 'echo', servicePort: 'http', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '' });
  const text = formatInterceptText({ ...info, target: { ...info.target!, sharedWith: ['echo-lb:8080', 'echo-lb:alt'] } });
  t.match(text, /\n {3}Service port {3}: echo:http \(80\)\n {3}Also takes {5}: echo-lb:8080, echo-lb:alt \(the same container port\)\n {3}Container {6}: echo:8080\n/);
  t.notMatch(formatInterceptText(info), /Also takes/, 'nothing when no other port shares it');
  t.end();
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
  const text = formatInterceptText({ ...interceptInfo({ name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '' }), target: undefined });
  t.notMatch(text, /Service port|Container/);
  t.match(text, /Destination {4}: localhost:8080/);
  t.end();
});

const headerFlags: ReadonlyArray<{ flags: string[]; want?: Array<{ name: string; value: string }>; problem?: RegExp }> = [
  { flags: [], want: [] },
  { flags: ['x-user=alice'], want: [{ name: 'x-user', value: 'alice' }] },
  { flags: ['X-User=alice', 'x-team=blue'], want: [{ name: 'X-User', value: 'alice' }, { name: 'x-team', value: 'blue' }] },
  { flags: ['x-token=a=b=='], want: [{ name: 'x-token', value: 'a=b==' }] },
  { flags: ['x-empty='], want: [{ name: 'x-empty', value: '' }] },
  { flags: ['baggage= session=42 '], want: [{ name: 'baggage', value: 'session=42' }] },
  { flags: ['x-user'], problem: /has no "="/ },
  { flags: ['=alice'], problem: /header name is empty/ },
  { flags: ['x user=alice'], problem: /"x user" is not a valid header name/ },
  { flags: [':authority=x'], problem: /not a valid header name/ },
  { flags: ['x-user=a\nb'], problem: /line break/ },
  { flags: ['x-ok=1', 'bad'], problem: /invalid --http-header "bad"/ },
];

for (const c of headerFlags) {
  t.test(`--http-header ${JSON.stringify(c.flags)}`, (t) => {
    if (c.want !== undefined) {
      t.strictSame(parseHeaderFlags(c.flags), c.want);
    } else {
      t.throws(() => parseHeaderFlags(c.flags), { code: 'bad-http-header', category: 'user', message: c.problem, hint: /--http-header x-user=alice/ });
    }
    t.end();
  });
}

t.test('one --http-header comes from yargs as a string', (t) => {
  t.strictSame(parseHeaderFlags('x-user=alice'), [{ name: 'x-user', value: 'alice' }]);
  t.end();
});

t.test('--http-header flags become the spec\'s headers, and the result says which requests it takes', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--http-header', 'x-user=alice', '--http-header', 'x-team=blue']);
  t.equal(res.code, 0);
  const call = env.daemon.calls.find((c) => c.startsWith('intercept '));
  t.match(JSON.parse(call?.slice('intercept '.length) ?? '{}'), { headers: [{ name: 'x-user', value: 'alice' }, { name: 'x-team', value: 'blue' }] });
  t.match(res.stdout, /Requests {7}: with x-user=alice and x-team=blue \(personal intercept\)/);
  const json = JSON.parse((await runCli(fakeEnv(), ['intercept', 'echo', '-p', '8080', '--http-header', 'x-user=alice', '-o', 'json'])).stdout) as { headers: unknown };
  t.strictSame(json.headers, [{ name: 'x-user', value: 'alice' }]);
});

t.test('a malformed --http-header is a one-line user error, before the daemon is asked', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--http-header', 'x-user']);
  t.equal(res.code, 2);
  t.equal(env.running, false);
  t.match(res.stderr, /^telepresence: invalid --http-header "x-user": it has no "="\nhint: use --http-header <name>=<value>/);
});
