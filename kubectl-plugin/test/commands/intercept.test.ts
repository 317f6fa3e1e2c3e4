import t from 'tap';
import { buildSpec, describeHeaders, formatInterceptText, parseHeaderFlags, parseMethodFlags, parsePathPrefixFlag, parsePortFlag } from '../../src/commands/intercept.js';
import { buildParser } from '../../src/cli.js';
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
  t.strictSame(spec, { name: 'mine', namespace: 'apps', workloadName: 'echo', workloadKind: '', serviceName: 'echo-svc', servicePort: 'grpc', containerName: 'app', localPort: 9000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] });
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
  const info = interceptInfo({ name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: 'Deployment', serviceName: 'echo', servicePort: 'http', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] });
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
  const text = formatInterceptText({ ...interceptInfo({ name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] }), target: undefined });
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

const prefixFlags: ReadonlyArray<{ value: string | undefined; want?: string; problem?: RegExp }> = [
  { value: undefined, want: '' },
  { value: '/api/', want: '/api/' },
  { value: '/', want: '/' },
  { value: '/a%20b', want: '/a%20b' },
  { value: 'api/', problem: /invalid --http-path-prefix "api\/": it does not start with "\/"/ },
  { value: '', problem: /does not start with "\/"/ },
  { value: '/my api', problem: /contains a space/ },
  { value: '/api?v=2', problem: /contains "\?"/ },
  { value: '/api#x', problem: /contains "#"/ },
];

for (const c of prefixFlags) {
  t.test(`--http-path-prefix ${JSON.stringify(c.value)}`, (t) => {
    if (c.want !== undefined) {
      t.equal(parsePathPrefixFlag(c.value), c.want);
    } else {
      t.throws(() => parsePathPrefixFlag(c.value), { code: 'bad-http-path-prefix', category: 'user', message: c.problem, hint: /--http-path-prefix \/api\// });
    }
    t.end();
  });
}

const methodFlags: ReadonlyArray<{ flags: string | string[] | undefined; want?: string[]; problem?: RegExp }> = [
  { flags: undefined, want: [] },
  { flags: 'GET', want: ['GET'] },
  { flags: 'get', want: ['GET'] },
  { flags: ['GET', 'post'], want: ['GET', 'POST'] },
  { flags: 'GET,POST', want: ['GET', 'POST'] },
  { flags: ['get, put', 'GET'], want: ['GET', 'PUT'] },
  { flags: 'M-SEARCH', want: ['M-SEARCH'] },
  { flags: 'GET,', problem: /invalid --http-method "GET,": the method is empty/ },
  { flags: 'GE T', problem: /"GE T" is not an HTTP method/ },
  { flags: ['GET', 'PO/ST'], problem: /invalid --http-method "PO\/ST"/ },
];

for (const c of methodFlags) {
  t.test(`--http-method ${JSON.stringify(c.flags)}`, (t) => {
    if (c.want !== undefined) {
      t.strictSame(parseMethodFlags(c.flags), c.want);
    } else {
      t.throws(() => parseMethodFlags(c.flags), { code: 'bad-http-method', category: 'user', message: c.problem, hint: /--http-method GET,POST/ });
    }
    t.end();
  });
}

t.test('path and method flags become the spec; the result says which requests it takes', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--http-header', 'x-user=alice', '--http-path-prefix', '/api/', '--http-method', 'get', '--http-method', 'POST']);
  t.equal(res.code, 0);
  const call = env.daemon.calls.find((c) => c.startsWith('intercept '));
  t.match(JSON.parse(call?.slice('intercept '.length) ?? '{}'), { headers: [{ name: 'x-user', value: 'alice' }], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] });
  t.match(res.stdout, /Requests {7}: with x-user=alice to \/api\/ with GET or POST \(personal intercept\)\n/);
  const json = JSON.parse((await runCli(fakeEnv(), ['intercept', 'echo', '-p', '8080', '--http-path-prefix', '/api/', '--http-method', 'GET,POST', '-o', 'json'])).stdout) as Record<string, unknown>;
  t.match(json, { headers: [], httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] });
});

t.test('a path prefix or methods alone make a personal intercept', (t) => {
  const spec = { name: 'x', namespace: 'd', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  t.equal(describeHeaders(interceptInfo(spec)), 'all (global intercept)');
  t.equal(describeHeaders(interceptInfo({ ...spec, httpPathPrefix: '/api/' })), 'to /api/ (personal intercept)');
  t.equal(describeHeaders(interceptInfo({ ...spec, httpMethods: ['POST'] })), 'with POST (personal intercept)');
  t.end();
});

t.test('a malformed --http-path-prefix or --http-method is refused before the daemon is asked', async (t) => {
  for (const args of [
    ['--http-path-prefix', 'api'],
    ['--http-method', 'GET POST'],
  ]) {
    const env = fakeEnv({ running: false });
    const res = await runCli(env, ['intercept', 'echo', '--port', '8080', ...args]);
    t.equal(res.code, 2, args.join(' '));
    t.equal(env.running, false, 'the daemon was not started');
    t.equal(env.daemon.calls.length, 0, 'nothing was asked');
    t.match(res.stderr, /^telepresence: invalid --http-(path-prefix|method) "[^"]+": .*\nhint: use --http-/);
  }
});

t.test('--help names the filter flags and says they make the intercept personal', async (t) => {
  const help = (await buildParser(['intercept', '--help'], fakeEnv().deps).getHelp()).replace(/\s+/g, ' ');
  t.match(help, /--http-path-prefix .*makes the intercept personal/);
  t.match(help, /--http-method .*repeatable or comma-separated/);
  t.match(help, /With --http-header, --http-path-prefix or --http-method the intercept is personal/);
});
