/**
 * Wiretaps end to end on the real cluster: a copy of every request to a workload's port reaches
 * the workstation while the caller is answered as before, by the app or by an intercept; several
 * wiretaps and an intercept share the port; a stopped local process costs the caller nothing, and
 * what could not be copied is counted. Requests come from a pod inside the cluster.
 *
 * Shares the cluster with other suites: installs the traffic-manager only when it is missing and
 * never uninstalls it; everything else lives in this run's own namespace, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-tap-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const alice: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const bob: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

const web = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: ns },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'app',
            image: ECHO_IMAGE,
            imagePullPolicy: 'IfNotPresent',
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
          },
        ],
      },
    },
  },
};
const webService = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };
const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }], terminationGracePeriodSeconds: 1 },
};

/** A workstation HTTP server that records `<method> <path>` of each request and answers `{host: name}`. */
interface Recorder {
  readonly port: number;
  readonly seen: string[];
  stop(): Promise<void>;
}

async function recorder(name: string): Promise<Recorder> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ host: name }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  };
  t.teardown(stop);
  return { port: (server.address() as AddressInfo).port, seen, stop };
}

/**
 * Sends GET `<prefix>/<i>` for i < COUNT from the client pod, one after another over one
 * keep-alive connection and then COUNT more each on a new connection, and prints
 * `{results: [{path, status, host, ms}], errors}`.
 */
const SEND_SCRIPT = String.raw`
const http = require('node:http');
const count = Number(process.env.COUNT);
const base = new URL(process.env.URL);
const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
const errors = [];
const one = (path, agent) => new Promise((resolve) => {
  const started = process.hrtime.bigint();
  const req = http.get({ host: base.hostname, port: base.port || 80, path, agent }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      let host = '';
      try { host = JSON.parse(text).host; } catch (e) { host = 'unparsable: ' + text.slice(0, 80); }
      resolve({ path, status: res.statusCode, host, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
  });
  req.setTimeout(10000, () => req.destroy(new Error('no answer within 10 s')));
  req.on('error', (e) => { errors.push(path + ': ' + e.message); resolve({ path, status: 0, host: '', ms: 0 }); });
});
(async () => {
  const results = [];
  for (let i = 0; i < count; i++) results.push(await one(process.env.PREFIX + '/k' + i, keep));
  keep.destroy();
  for (let i = 0; i < count; i++) results.push(await one(process.env.PREFIX + '/n' + i, false));
  console.log(JSON.stringify({ results, errors }));
})();
`;

interface Sent {
  results: Array<{ path: string; status: number; host: string; ms: number }>;
  errors: string[];
}

async function send(prefix: string, count: number): Promise<Sent> {
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'env', `COUNT=${count}`, `PREFIX=${prefix}`, `URL=http://web.${ns}/`, 'node', '-e', SEND_SCRIPT], { timeoutMs: 120_000 });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Sent;
}

/**
 * Whether `seen` holds exactly the requests of `send(prefix, count)`: each once, and those of the
 * keep-alive connection in the order sent. Copies of different connections travel in tunnels of
 * their own, so they may arrive in another order than their requests were sent.
 */
function copiedExactly(seen: readonly string[], prefix: string, count: number): { same: boolean; keepAliveInOrder: boolean } {
  const want = paths(prefix, count);
  const same = JSON.stringify([...seen].sort()) === JSON.stringify([...want].sort());
  const keepAlive = seen.filter((s) => s.startsWith(`GET ${prefix}/k`));
  return { same, keepAliveInOrder: JSON.stringify(keepAlive) === JSON.stringify(want.slice(0, count)) };
}

const paths = (prefix: string, count: number): string[] => [...Array.from({ length: count }, (_, i) => `GET ${prefix}/k${i}`), ...Array.from({ length: count }, (_, i) => `GET ${prefix}/n${i}`)];

async function podUids(): Promise<string[]> {
  const out = await kube.kubectl(['-n', ns, 'get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[*].metadata.uid}'], { timeoutMs: 30_000 });
  return out.trim().split(/\s+/).filter((s) => s !== '').sort();
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), web, webService, clientPod]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/web', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  const installed = await processRunner.run('kubectl', ['--kubeconfig', cluster.kubeconfig, '-n', MANAGER_NS, 'get', 'deployment', 'traffic-manager']);
  if (installed.exitCode !== 0) await alice.ok(['install'], 300_000);
  await alice.ok(['connect']);
  await bob.ok(['connect']);
});

t.teardown(async () => {
  await alice.dispose();
  await bob.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

t.test('bad input: a malformed --port, or a port the workload does not have, changes nothing', async (t) => {
  const before = await podUids();
  const malformed = await alice.run(['wiretap', 'web', '--port', '80:']);
  t.equal(malformed.exitCode, 2, 'a malformed --port is a user error');
  t.match(malformed.stderr, /^telepresence: invalid --port "80:"\nhint: use --port <local port>\[:<service port name or number>\]/, malformed.stderr);
  const missing = await alice.run(['wiretap', 'web', '--port', '9999:grpc', '--mount', 'false']);
  t.equal(missing.exitCode, 2, 'a port the workload does not have is a user error');
  t.match(missing.stderr, /grpc/, `names the port asked for:\n${missing.stderr}`);
  t.match(missing.stderr, /http/, 'and the ones there are');
  t.strictSame(await podUids(), before, 'the pods were not touched');
});

let aliceTap: Recorder;

t.test('a wiretap beside the app: the app answers every request, the wiretap sees every one, in order', async (t) => {
  aliceTap = await recorder('alice-tap');
  const out = await alice.ok(['wiretap', 'web', '--port', `${aliceTap.port}:http`, '--mount', 'false'], 300_000);
  t.match(out, /Wiretap name {3}: web-\S+-wiretap\n/, `reports the wiretap:\n${out}`);
  t.match(out, /Copies to {6}: localhost:\d+ \(its answers are discarded/, 'says where the copy goes');
  // The agent learns of the wiretap from the manager's next snapshot.
  await eventually(async () => {
    const probe = await send('/probe', 1);
    if (!aliceTap.seen.some((s) => s.startsWith('GET /probe/'))) throw new Error(`no copy yet; answered by ${probe.results.map((r) => r.host).join(',')}`);
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'a copy of a request at the wiretap' });
  aliceTap.seen.splice(0);

  const sent = await send('/a', 20);
  t.strictSame(sent.errors, [], 'no request failed');
  t.strictSame(sent.results.filter((r) => r.status !== 200 || !r.host.startsWith('web-')), [], 'the app answered all 40');
  await eventually(() => {
    if (aliceTap.seen.length < 40) throw new Error(`${aliceTap.seen.length} of 40 copied`);
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'every copy at the wiretap' });
  t.strictSame(copiedExactly(aliceTap.seen, '/a', 20), { same: true, keepAliveInOrder: true }, `the wiretap saw every request once, those of one connection in order:\n${aliceTap.seen.join(', ')}`);
});

let bobWeb: Recorder;
let bobTap: Recorder;

t.test('two wiretaps and a global intercept share the port: the intercept answers, each wiretap sees every request', async (t) => {
  bobWeb = await recorder('bob');
  bobTap = await recorder('bob-tap');
  await bob.ok(['wiretap', 'web', '--port', `${bobTap.port}:http`, '--name', 'web-bob-tap', '--mount', 'false'], 300_000);
  await bob.ok(['intercept', 'web', '--port', `${bobWeb.port}:http`, '--name', 'web-bob', '--mount', 'false'], 300_000);
  await eventually(async () => {
    const probe = await send('/probe2', 1);
    if (probe.results[0]?.host !== 'bob') throw new Error(`answered by ${probe.results[0]?.host ?? probe.errors.join(';')}`);
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'a request answered by the intercept' });
  await eventually(() => {
    if (!bobTap.seen.some((s) => s.startsWith('GET /probe2/'))) throw new Error('no copy at bob\'s wiretap yet');
  }, { timeoutMs: 10_000, intervalMs: 100, what: 'a copy at bob\'s wiretap' });
  for (const r of [aliceTap, bobWeb, bobTap]) r.seen.splice(0);

  const sent = await send('/b', 20);
  t.strictSame(sent.errors, [], 'no request failed');
  t.strictSame(sent.results.filter((r) => r.status !== 200 || r.host !== 'bob'), [], 'the intercept answered all 40');
  t.strictSame(bobWeb.seen, paths('/b', 20), 'the intercept saw each request once');
  await eventually(() => {
    if (aliceTap.seen.length < 40 || bobTap.seen.length < 40) throw new Error(`copied: alice ${aliceTap.seen.length}, bob ${bobTap.seen.length} of 40`);
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'every copy at both wiretaps' });
  t.strictSame(copiedExactly(aliceTap.seen, '/b', 20), { same: true, keepAliveInOrder: true }, 'alice\'s wiretap saw each request once');
  t.strictSame(copiedExactly(bobTap.seen, '/b', 20), { same: true, keepAliveInOrder: true }, 'bob\'s too');
});

t.test('list and status show each engagement\'s mode', async (t) => {
  const listed = await alice.json<{ workloads: Array<{ name: string; intercepts: Array<{ name: string; mode: string }> }> }>(['list']);
  const modes = listed.workloads.find((w) => w.name === 'web')?.intercepts.map((i) => `${i.name} ${i.mode}`).sort();
  t.strictSame(modes, ['web-bob intercept', 'web-bob-tap wiretap', `web-${ns}-wiretap wiretap`]);
  t.match(await alice.ok(['status']), new RegExp(`web-${ns}-wiretap: web all requests -> a copy to localhost:${aliceTap.port} \\(wiretap\\)`), 'status says it is a copy');
});

t.test('a stopped wiretap process: every request is still answered, and the copies not made are counted', async (t) => {
  await bob.ok(['leave', 'web-bob']);
  await aliceTap.stop();
  await eventually(async () => {
    const probe = await send('/probe3', 1);
    if (!probe.results[0]?.host.startsWith('web-')) throw new Error(`answered by ${probe.results[0]?.host ?? probe.errors.join(';')}`);
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'the app answering again after the intercept left' });
  bobTap.seen.splice(0);
  const sent = await send('/c', 20);
  t.strictSame(sent.errors, [], 'no request failed');
  t.strictSame(sent.results.filter((r) => r.status !== 200 || !r.host.startsWith('web-')), [], 'the app answered all 40');
  await eventually(() => {
    if (bobTap.seen.length < 40) throw new Error(`${bobTap.seen.length} of 40 copied`);
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'bob\'s wiretap still gets every copy' });
  t.strictSame(copiedExactly(bobTap.seen, '/c', 20), { same: true, keepAliveInOrder: true }, 'the other wiretap is not affected');
  const logs = await eventually(async () => {
    const text = await kube.kubectl(['-n', ns, 'logs', 'deployment/web', '-c', 'traffic-agent', '--tail=-1'], { timeoutMs: 30_000 });
    const dropped = text.split('\n').filter((l) => l.includes('wiretap copy incomplete') && l.includes(`web-${ns}-wiretap`));
    if (dropped.length < 21) throw new Error(`${dropped.length} connections reported with dropped bytes`);
    return dropped;
  }, { timeoutMs: 20_000, intervalMs: 500, what: 'the agent counting the copies it could not make' });
  t.ok(logs.every((l) => /"droppedBytes":[1-9]/.test(l)), 'each names the bytes dropped');
});

t.test('leave: the wiretaps end and the app keeps answering', async (t) => {
  await alice.ok(['leave', `web-${ns}-wiretap`]);
  await bob.ok(['leave', 'web-bob-tap']);
  const sent = await send('/d', 3);
  t.strictSame(sent.errors, []);
  t.ok(sent.results.every((r) => r.host.startsWith('web-')), 'the app answers');
  const listed = await alice.json<{ workloads: Array<{ name: string; intercepts: unknown[] }> }>(['list']);
  t.strictSame(listed.workloads.find((w) => w.name === 'web')?.intercepts, [], 'no engagement left');
});
