import t from 'tap';
import { buildIngestSpec, formatIngestText } from '../../src/commands/ingest.js';
import { fakeEnv, interceptInfo, runCli } from '../fixtures/fake-deps.js';

t.test('flags become an ingest spec: no port, mode ingest', (t) => {
  t.strictSame(buildIngestSpec({ workload: 'echo', container: 'worker', name: undefined, namespace: 'apps' }), {
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
    mode: 'ingest',
    ports: [],
  });
  t.end();
});

t.test('ingest: the daemon gets the ingest spec; the result says it takes no traffic', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['ingest', 'echo', '--container', 'app', '--mount=false']);
  t.equal(res.code, 0, res.stderr);
  const call = env.daemon.calls.find((c) => c.startsWith('intercept '));
  t.match(JSON.parse(call?.slice('intercept '.length) ?? '{}'), { workloadName: 'echo', containerName: 'app', localPort: 0, mode: 'ingest' });
  t.match(res.stdout, /Ingest name/);
  t.match(res.stdout, /Traffic {8}: none \(the app in the cluster keeps every request\)/);
  t.notMatch(res.stderr, /nothing listens/, 'no note about a local port');
});

t.test('ingest --output json names the mode', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['ingest', 'echo', '--mount=false', '--output', 'json']);
  t.equal(res.code, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { workload: 'echo', mode: 'ingest', localPort: 0 });
});

t.test('the text of an ingest', (t) => {
  const info = interceptInfo({ name: 'echo-d-ingest', namespace: 'd', workloadName: 'echo', workloadKind: 'Deployment', serviceName: '', servicePort: '', containerName: 'app', localPort: 0, headers: [], httpPathPrefix: '', httpMethods: [], mode: 'ingest', ports: [] });
  t.match(formatIngestText(info), /^Using Deployment echo\n {3}Ingest name {4}: echo-d-ingest\n/);
  t.end();
});
