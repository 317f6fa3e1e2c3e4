import t from 'tap';
import { dockerNetworkFor, dockerRunArgs, interceptOptions, launchOf, parseMountFlag } from '../src/launch.js';
import { fakeEnv, interceptInfo, runCli, type FakeEnv } from './fixtures/fake-deps.js';

const REMOTE = {
  name: 'echo-default',
  environment: { GREETING: 'hello', TELEPRESENCE_ROOT: '/tmp/tp-echo', TELEPRESENCE_MOUNTS: '/etc/config' },
  mountPoint: '/tmp/tp-echo',
  mounts: ['/etc/config'],
  envFile: '',
  envJson: '',
  traffic: 'direct',
  trafficReason: '',
};

function withIntercept(): FakeEnv {
  const env = fakeEnv();
  env.daemon.remote_ = REMOTE;
  env.daemon.intercepts_ = [interceptInfo({ name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] })];
  return env;
}

t.test('--mount', (t) => {
  t.strictSame(parseMountFlag('true', '/home/alice'), { mount: true, mountPoint: '' });
  t.strictSame(parseMountFlag('false', '/home/alice'), { mount: false, mountPoint: '' });
  t.strictSame(parseMountFlag('mnt/echo', '/home/alice'), { mount: true, mountPoint: '/home/alice/mnt/echo' });
  t.strictSame(parseMountFlag('/abs', '/home/alice'), { mount: true, mountPoint: '/abs' });
  t.strictSame(interceptOptions({ 'env-file': 'echo.env', 'env-json': '/tmp/e.json' }, '/w'), { mount: true, mountPoint: '', envFile: '/w/echo.env', envJson: '/tmp/e.json', mountAllowOther: false });
  t.equal(interceptOptions({ 'docker-run': true }, '/w').mountAllowOther, true, 'a container may read the mount');
  t.end();
});

t.test('what follows -- is the process', (t) => {
  t.equal(launchOf({}), undefined, 'nothing to run');
  t.strictSame(launchOf({ '--': ['node', 'server.js', 8080] }), { kind: 'command', argv: ['node', 'server.js', '8080'] });
  t.strictSame(launchOf({ 'docker-run': true, '--': ['img:1'] }), { kind: 'docker', argv: ['img:1'], dockerMount: undefined });
  t.throws(() => launchOf({ 'docker-run': true }), { code: 'bad-usage', message: /needs the arguments of docker run/ });
  t.throws(() => launchOf({ 'docker-mount': '/v' }), { code: 'bad-usage', message: /--docker-mount goes with --docker-run/ });
  t.end();
});

t.test('docker run gets the environment by name, the volumes and the port', (t) => {
  const outcome = { ...interceptInfo({ name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 9000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] }), remote: REMOTE };
  t.strictSame(dockerRunArgs(outcome, { kind: 'docker', argv: ['-it', 'img:1', 'serve'], dockerMount: '/var/remote' }, 'tp-x'), [
    'run', '--rm', '--name', 'tp-x',
    '-e', 'GREETING', '-e', 'TELEPRESENCE_MOUNTS', '-e', 'TELEPRESENCE_ROOT',
    '-p', '127.0.0.1:9000:8080',
    '-v', '/tmp/tp-echo:/var/remote',
    '-it', 'img:1', 'serve',
  ]);
  t.throws(() => dockerRunArgs(outcome, { kind: 'docker', argv: ['-d', 'img:1'], dockerMount: undefined }, 'tp-x'), { code: 'bad-usage', message: /detached/ });
  t.end();
});

t.test('intercept -- cmd: runs it with the environment, then leaves, and exits with its status', async (t) => {
  const env = withIntercept();
  env.processes.exit = { exitCode: 3, signal: null };
  // The command is what will listen: no note that nothing does yet.
  env.refusedPorts.add(8080);
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--env-file', 'echo.env', '--', 'node', 'server.js']);
  t.equal(res.code, 3, "the command's exit status");
  t.notMatch(res.stderr, /nothing listens/, 'no note about the port the command will take');
  t.equal(res.stdout, '', 'stdout is left to the command');
  t.match(res.stderr, /Volume mount {3}: \/tmp\/tp-echo/, 'the intercept is reported on stderr');
  t.strictSame(env.daemon.interceptOptions, { mount: true, mountPoint: '', envFile: '/home/alice/echo.env', envJson: '', mountAllowOther: false });
  const started = env.processes.started[0];
  t.equal(started?.command, 'node');
  t.strictSame(started?.args, ['server.js']);
  t.match(started?.env, { PATH: '/usr/bin', GREETING: 'hello', TELEPRESENCE_ROOT: '/tmp/tp-echo' }, 'the local environment plus the remote one');
  t.equal(env.daemon.calls.at(-1), 'leave echo-default', 'left when it exited');
});

t.test('intercept -- a command that does not exist: a clear error before anything in the cluster changes', async (t) => {
  const env = withIntercept();
  env.missingPrograms.add('nope');
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--', 'nope']);
  t.equal(res.code, 2, 'a user error');
  t.match(res.stderr, /cannot run nope: not found on PATH/);
  t.match(res.stderr, /hint: check the command after --, or give its full path/);
  t.notOk(env.daemon.calls.some((c) => c.startsWith('intercept')), 'no intercept was asked for');
});

t.test('intercept --docker-run without docker installed: refused before anything in the cluster changes', async (t) => {
  const env = withIntercept();
  env.missingPrograms.add('docker');
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--docker-run', '--', 'img:1']);
  t.equal(res.code, 2, 'a user error');
  t.match(res.stderr, /--docker-run needs the docker CLI, which is not on PATH/);
  t.notOk(env.daemon.calls.some((c) => c.startsWith('intercept')), 'no intercept was asked for');
});

t.test('a command that fails to start after the intercept: a clear error, and the intercept is left', async (t) => {
  const env = withIntercept();
  env.processes.exit = { exitCode: null, signal: null, startError: Object.assign(new Error('spawn nope ENOENT'), { code: 'ENOENT' }) };
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--', 'nope']);
  t.equal(res.code, 2, 'a user error');
  t.match(res.stderr, /cannot run nope: no such command/);
  t.ok(env.daemon.calls.includes('leave echo-default'), 'left');
});

t.test('the intercept ends first: the command is stopped and not left twice', async (t) => {
  const env = withIntercept();
  // The first snapshot has the intercept; then it is gone.
  let onSnapshot: ((s: { intercepts: unknown[] }) => void) | undefined;
  env.daemon.watchState = ((cb: (s: { intercepts: unknown[] }) => void) => {
    onSnapshot = cb;
    cb({ intercepts: env.daemon.intercepts_ });
    return () => undefined;
  }) as typeof env.daemon.watchState;
  env.processes.whileRunning = async () => {
    // Once the command runs (and the CLI watches the daemon), the intercept goes.
    await new Promise((r) => setImmediate(r));
    onSnapshot?.({ intercepts: [] });
  };
  env.processes.exit = { exitCode: null, signal: 'SIGTERM' };
  const res = await runCli(env, ['intercept', 'echo', '--port', '8080', '--docker-run', '--', 'img:1']);
  t.equal(res.code, 143, '128 + SIGTERM');
  t.strictSame(env.processes.killed, ['docker SIGTERM'], 'stopped');
  t.match(env.processes.ran[0], /^docker stop -t 2 tp-echo-default-/, 'and its container stopped');
  t.notOk(env.daemon.calls.includes('leave echo-default'), 'nothing left to leave');
});

t.test('with outbound access up, a container runs on the workstation network when the ports agree', (t) => {
  const spec = { name: 'echo-default', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  const same = { ...interceptInfo({ ...spec, localPort: 8080 }), remote: REMOTE };
  const other = { ...interceptInfo({ ...spec, localPort: 9000 }), remote: REMOTE };
  t.strictSame(dockerNetworkFor(same, ['img:1'], true), { network: 'host' });
  t.strictSame(dockerNetworkFor(same, ['img:1'], false), { network: 'bridge' }, 'no outbound access: the bridge, as before');
  t.strictSame(dockerNetworkFor(same, ['--network', 'mynet', 'img:1'], true), { network: 'bridge' }, 'a network of the user’s own is kept');
  t.strictSame(dockerNetworkFor(same, ['--net=mynet', 'img:1'], true), { network: 'bridge' });
  const differing = dockerNetworkFor(other, ['img:1'], true);
  t.equal(differing.network, 'bridge');
  t.match(differing.note, /listens on 8080, the intercept on 9000.*--port 8080:/);
  t.strictSame(dockerRunArgs(same, { kind: 'docker', argv: ['img:1'], dockerMount: undefined }, 'tp-x', 'host'), [
    'run', '--rm', '--name', 'tp-x',
    '-e', 'GREETING', '-e', 'TELEPRESENCE_MOUNTS', '-e', 'TELEPRESENCE_ROOT',
    '--network', 'host',
    '-v', '/tmp/tp-echo:/tmp/tp-echo',
    'img:1',
  ]);
  t.end();
});

t.test('--docker-run of a replace publishes every port of the container; the host network only when none is moved', (t) => {
  const spec = { name: 'echo-default-replace', namespace: 'default', workloadName: 'echo', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 0, headers: [], httpPathPrefix: '', httpMethods: [], mode: 'replace' };
  const moved = { ...interceptInfo({ ...spec, ports: [{ containerPort: 8080, localPort: 18080 }, { containerPort: 9090, localPort: 9090 }] }), remote: REMOTE };
  const args = dockerRunArgs(moved, { kind: 'docker', argv: ['img:1'], dockerMount: undefined }, 'tp-x');
  t.strictSame(args.filter((_, i) => args[i - 1] === '-p'), ['127.0.0.1:18080:8080', '127.0.0.1:9090:9090']);
  t.match(dockerNetworkFor(moved, ['img:1'], true), { network: 'bridge', note: /moves container port 8080 to 18080/ });
  const kept = { ...interceptInfo({ ...spec, ports: [{ containerPort: 8080, localPort: 8080 }] }), remote: REMOTE };
  t.strictSame(dockerNetworkFor(kept, ['img:1'], true), { network: 'host' });
  t.end();
});
