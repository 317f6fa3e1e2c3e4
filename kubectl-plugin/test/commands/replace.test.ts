import t from 'tap';
import type { InterceptSpec } from '@telepresence-ts/core';
import { buildParser } from '../../src/cli.js';
import { buildReplaceSpec, formatReplaceText, parseReplacePortFlags } from '../../src/commands/replace.js';
import { fakeEnv, interceptInfo, runCli } from '../fixtures/fake-deps.js';

const replaceSpec = (over: Partial<InterceptSpec> = {}): InterceptSpec => ({
  name: 'echo-default-replace',
  namespace: 'default',
  workloadName: 'echo',
  workloadKind: 'Deployment',
  serviceName: '',
  servicePort: '',
  containerName: 'echo',
  localPort: 0,
  headers: [],
  httpPathPrefix: '',
  httpMethods: [],
  mode: 'replace',
  ports: [
    { containerPort: 8080, localPort: 8080 },
    { containerPort: 9090, localPort: 19090 },
  ],
  ...over,
});

t.test('flags become a replace spec: a container, no local port of its own, the ports to move', (t) => {
  t.strictSame(buildReplaceSpec({ workload: 'echo', container: 'worker', name: undefined, namespace: 'apps', port: ['18080:8080', '9090'] }), {
    name: '',
    namespace: 'apps',
    workloadName: 'echo',
    workloadKind: '',
    serviceName: '',
    servicePort: '',
    containerName: 'worker',
    localPort: 0,
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'replace',
    ports: [
      { containerPort: 8080, localPort: 18080 },
      { containerPort: 9090, localPort: 9090 },
    ],
  });
  t.strictSame(parseReplacePortFlags(undefined), [], 'no --port: every port keeps its number');
  t.strictSame(parseReplacePortFlags('18080:8080'), [{ containerPort: 8080, localPort: 18080 }], 'one flag is a string');
  t.end();
});

t.test('malformed --port forms are refused, each saying why', (t) => {
  const cases: ReadonlyArray<[string, string[], RegExp]> = [
    ['not a number', ['http'], /^invalid --port "http": it is not <local port>:<container port>$/],
    ['empty', [''], /it is not <local port>:<container port>/],
    ['no container port after the colon', ['8080:'], /it is not <local port>:<container port>/],
    ['no local port', [':8080'], /it is not <local port>:<container port>/],
    ['three parts', ['1:2:3'], /it is not <local port>:<container port>/],
    ['a port name for the container port', ['8080:http'], /^invalid --port "8080:http": the container port must be a number$/],
    ['a negative port', ['-1:8080'], /it is not <local port>:<container port>/],
    ['local port 0', ['0:8080'], /a port is outside 1-65535/],
    ['container port 70000', ['8080:70000'], /a port is outside 1-65535/],
    ['a container port twice', ['1:8080', '2:8080'], /^invalid --port "2:8080": container port 8080 is already mapped$/],
    ['two container ports to one local port', ['1:8080', '1:9090'], /^invalid --port "1:9090": local port 1 already receives container port 8080$/],
  ];
  for (const [name, flags, message] of cases) {
    t.throws(() => parseReplacePortFlags(flags), { code: 'bad-port', category: 'user', message, hint: /--port <local port>:<container port>/ }, name);
  }
  t.end();
});

t.test('a malformed --port changes nothing: the daemon is not even started', async (t) => {
  const env = fakeEnv({ running: false });
  const res = await runCli(env, ['replace', 'echo', '--port', '8080:http']);
  t.not(res.code, 0);
  t.equal(env.running, false, 'the daemon was not started');
  t.equal(env.daemon.calls.length, 0, 'nothing was asked');
  t.match(res.stderr, /^telepresence: invalid --port "8080:http": the container port must be a number\nhint: use --port <local port>:<container port>/);
});

t.test('replace: the daemon gets the replace spec; the result says the container is gone from every replica', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['replace', 'echo', '--container', 'app', '--port', '19090:9090', '--mount=false']);
  t.equal(res.code, 0, res.stderr);
  const call = env.daemon.calls.find((c) => c.startsWith('intercept '));
  t.match(JSON.parse(call?.slice('intercept '.length) ?? '{}'), {
    workloadName: 'echo',
    containerName: 'app',
    localPort: 0,
    mode: 'replace',
    ports: [{ containerPort: 9090, localPort: 19090 }],
  });
  t.match(res.stdout, /Replace name/);
  t.match(res.stdout, /Replicas {7}: every replica runs without/);
});

t.test('replace --output json names the mode and the ports', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['replace', 'echo', '--port', '19090:9090', '--mount=false', '--output', 'json']);
  t.equal(res.code, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { workload: 'echo', mode: 'replace', localPort: 0, ports: [{ containerPort: 9090, localPort: 19090 }] });
});

t.test('the text of a replace', (t) => {
  t.equal(
    formatReplaceText(interceptInfo(replaceSpec())),
    [
      'Using Deployment echo',
      '   Replace name   : echo-default-replace',
      '   State          : ACTIVE',
      '   Container      : echo (not running in the cluster while the replace lasts)',
      '   Ports          : localhost: 8080, 9090 -> 19090',
      '   Replicas       : every replica runs without echo; all their connections to its ports come here',
      '',
    ].join('\n'),
  );
  t.end();
});

t.test('list and status show a replace as one, text and json', async (t) => {
  const env = fakeEnv();
  const ii = interceptInfo(replaceSpec());
  env.daemon.intercepts_ = [ii];
  env.daemon.listResponse = { workloads: [{ name: 'echo', namespace: 'default', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'installed', intercepts: [ii] }] };
  const status = (await runCli(env, ['status'])).stdout;
  t.match(status, 'echo-default-replace: echo every port -> localhost: 8080, 9090 -> 19090 (replace: container echo not running in the cluster), by alice@laptop (ACTIVE)');
  env.io.stdout = '';
  const json = JSON.parse((await runCli(env, ['status', '-o', 'json'])).stdout) as { intercepts: Array<{ mode: string; ports: unknown }> };
  t.strictSame(json.intercepts.map((i) => [i.mode, i.ports]), [['replace', [{ containerPort: 8080, localPort: 8080 }, { containerPort: 9090, localPort: 19090 }]]]);
  env.io.stdout = '';
  const list = (await runCli(env, ['list'])).stdout;
  t.match(list, /echo-default-replace by alice@laptop -> localhost: 8080, 9090 -> 19090 \(replace: container echo not running in the cluster\)/);
  env.io.stdout = '';
  const listJson = JSON.parse((await runCli(env, ['list', '-o', 'json'])).stdout) as { workloads: Array<{ intercepts: Array<{ mode: string }> }> };
  t.equal(listJson.workloads[0]?.intercepts[0]?.mode, 'replace');
});

t.test('--help teaches: the whole container, every replica, the conflicts, leave', async (t) => {
  const help = (await buildParser(['replace', '--help'], fakeEnv().deps).getHelp()).replace(/\s+/g, ' ');
  t.match(help, /Every replica of the workload loses the container while the replace lasts, and all of their connections to the ports its Services lead to come to this workstation/);
  t.match(help, /--port .*repeatable.*a port not named keeps its number/);
  t.match(help, /default <workload>-<namespace>-replace/);
  t.match(help, /cannot intercept or replace the container meanwhile/);
  t.match(help, /kubectl telepresence leave <name>/);
});
