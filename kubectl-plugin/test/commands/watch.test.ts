process.env.TZ = 'UTC';
import t from 'tap';
import { TpError, type TrafficEvent } from '@telepresence-ts/core';
import { bodyBytesOf } from '../../src/commands/watch.js';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';

function event(over: Partial<TrafficEvent> = {}): TrafficEvent {
  return {
    interceptId: 's1:echo-default',
    kind: 'http',
    startedAt: Date.UTC(2026, 0, 2, 12, 0, 1, 250),
    durationMs: 12,
    podName: 'echo-1',
    source: '10.0.0.5:4321',
    answeredBy: 'workstation',
    bytesIn: 120,
    bytesOut: 2150,
    method: 'GET',
    path: '/api/x',
    status: 200,
    requestHeaders: [{ name: 'Authorization', value: 'Bearer secret' }],
    responseHeaders: [],
    requestBody: Buffer.from('hello'),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
    ...over,
  };
}

t.test('one line per event, in order, until the stream ends', async (t) => {
  const env = fakeEnv();
  env.daemon.trafficEvents = [event(), event({ kind: 'tcp', answeredBy: 'app', durationMs: 340, droppedBytes: 10 })];
  const res = await runCli(env, ['watch', 'echo-default']);
  t.equal(res.code, 0);
  t.equal(
    res.stdout,
    '12:00:01.250  GET /api/x  200  12 ms  workstation  pod/echo-1\n' + '12:00:01.250  peer 10.0.0.5:4321  in 120 B  out 2.1 KiB  340 ms  app  pod/echo-1  dropped 10 B\n',
  );
  t.match(res.stderr, /Watching echo-default \(Ctrl-C to stop\)\nthe traffic-manager ended the watch\n/);
  t.ok(env.daemon.calls.includes('watchTraffic echo-default  0'), 'no bodies unless asked');
});

t.test('--output json: one object per line, credentials masked unless --show-credentials', async (t) => {
  const env = fakeEnv();
  env.daemon.trafficEvents = [event()];
  const res = await runCli(env, ['watch', 'echo-default', '-o', 'json', '-n', 'default']);
  t.equal(res.code, 0);
  const lines = res.stdout.trimEnd().split('\n');
  t.equal(lines.length, 1);
  t.match(JSON.parse(lines[0] ?? ''), { kind: 'http', method: 'GET', path: '/api/x', status: 200, answeredBy: 'workstation', requestHeaders: [{ name: 'Authorization', value: /^Bearer •+$/ }] });
  t.notOk('requestBody' in JSON.parse(lines[0] ?? ''));
  t.ok(env.daemon.calls.includes('watchTraffic echo-default default 0'));

  const env2 = fakeEnv();
  env2.daemon.trafficEvents = [event()];
  const res2 = await runCli(env2, ['watch', 'echo-default', '-o', 'json', '--show-credentials', '--bodies']);
  t.match(JSON.parse(res2.stdout), { requestHeaders: [{ value: 'Bearer secret' }], requestBody: 'hello' });
  t.ok(env2.daemon.calls.includes('watchTraffic echo-default  4096'), '--bodies alone asks for 4 KiB');
});

t.test('--headers prints them under the line', async (t) => {
  const env = fakeEnv();
  env.daemon.trafficEvents = [event()];
  const res = await runCli(env, ['watch', 'echo-default', '--headers', '--bodies=3']);
  t.equal(res.stdout, '12:00:01.250  GET /api/x  200  12 ms  workstation  pod/echo-1\n    > Authorization: Bearer ••••••\n    > (body) hello\n');
  t.ok(env.daemon.calls.includes('watchTraffic echo-default  3'));
});

t.test('Ctrl-C stops the watch and exits 0', async (t) => {
  const env = fakeEnv();
  env.daemon.trafficKeepOpen = true;
  env.daemon.trafficEvents = [event()];
  const running = runCli(env, ['watch', 'echo-default']);
  await new Promise<void>((resolve) => {
    const poll = (): void => (env.interrupt !== undefined && env.io.stdout !== '' ? resolve() : void setImmediate(poll));
    poll();
  });
  env.interrupt?.();
  const res = await running;
  t.equal(res.code, 0);
  t.equal(env.daemon.trafficStopped, 1);
  t.notMatch(res.stderr, /ended the watch/);
});

t.test('errors: an unknown name, an older manager, a bad --bodies', async (t) => {
  const env = fakeEnv();
  env.daemon.trafficEnd = new TpError('user', 'unknown-intercept', 'no intercept or wiretap is named "nope"', { hint: 'the known ones: echo-default' });
  const res = await runCli(env, ['watch', 'nope']);
  t.equal(res.code, 2);
  t.match(res.stderr, /no intercept or wiretap is named "nope"\nhint: the known ones: echo-default\n/);
  const old = fakeEnv();
  old.daemon.trafficEnd = new TpError('cluster', 'manager-too-old', 'the traffic-manager cannot show traffic: it is older than this client');
  t.equal((await runCli(old, ['watch', 'echo-default'])).code, 4);
  const bad = await runCli(fakeEnv(), ['watch', 'echo-default', '--bodies=lots']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--bodies takes a number of bytes/);
});

t.test('bodyBytesOf', async (t) => {
  t.equal(bodyBytesOf(undefined), 0);
  t.equal(bodyBytesOf(''), 4096);
  t.equal(bodyBytesOf('100'), 100);
  t.throws(() => bodyBytesOf('-1'), { code: 'bad-flag' });
  t.throws(() => bodyBytesOf(String(1024 * 1024)), { code: 'bad-flag' });
});
