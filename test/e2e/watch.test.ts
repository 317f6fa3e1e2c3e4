/**
 * The live traffic view end to end on the real cluster: `kubectl telepresence watch <name>
 * --output json` runs while requests come from a pod inside the cluster, and every request shows
 * up, in order, with its method, path, status and who answered it: the workstation or the app
 * for a personal intercept, the workstation for a global one. Credentials are masked unless
 * --show-credentials; a watcher that comes late first gets what was kept; another client's
 * engagement can be watched by name; list shows the counts.
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
import type { LongRunning } from '../src/process-runner.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-watch-${randomBytes(3).toString('hex')}`;
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

/** A workstation HTTP server answering `{host: name}` (status 201, so it is told from the app's 200). */
async function workstation(name: string): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.statusCode = 201;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ host: name }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Sends the requests one after another, each on a new connection, from the client pod: GET
 * `<path>` with `Authorization: Bearer e2e-secret`, and `x-user: alice` when asked. Prints
 * `[{path, status, host}]`.
 */
const SEND_SCRIPT = String.raw`
const http = require('node:http');
const requests = JSON.parse(process.env.REQUESTS);
const base = new URL(process.env.URL);
const one = ({ path, alice }) => new Promise((resolve) => {
  const headers = { authorization: 'Bearer e2e-secret' };
  if (alice) headers['x-user'] = 'alice';
  const req = http.get({ host: base.hostname, port: base.port || 80, path, headers, agent: false }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      let host = '';
      try { host = JSON.parse(text).host; } catch (e) { host = 'unparsable: ' + text.slice(0, 80); }
      resolve({ path, status: res.statusCode, host });
    });
  });
  req.setTimeout(10000, () => req.destroy(new Error('no answer within 10 s')));
  req.on('error', (e) => resolve({ path, status: 0, host: 'error: ' + e.message }));
});
(async () => {
  const results = [];
  for (const r of requests) results.push(await one(r));
  console.log(JSON.stringify(results));
})();
`;

interface Sent {
  path: string;
  status: number;
  host: string;
}

async function send(requests: Array<{ path: string; alice?: boolean }>): Promise<Sent[]> {
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'env', `REQUESTS=${JSON.stringify(requests)}`, `URL=http://web.${ns}/`, 'node', '-e', SEND_SCRIPT], { timeoutMs: 120_000 });
  return JSON.parse(out.trim().split('\n').pop() ?? '[]') as Sent[];
}

interface WatchedEvent {
  kind: 'http' | 'tcp';
  method?: string;
  path?: string;
  status?: number;
  answeredBy: string;
  pod: string;
  requestHeaders?: Array<{ name: string; value: string }>;
}

/** The JSON lines a `watch --output json` has printed so far. */
function eventsOf(watch: LongRunning): WatchedEvent[] {
  return watch
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as WatchedEvent);
}

const httpPaths = (events: readonly WatchedEvent[], prefix: string): WatchedEvent[] => events.filter((e) => e.kind === 'http' && (e.path ?? '').startsWith(prefix));

/**
 * Starts `watch` and sends probes until one shows up: the agent parses connections it accepts
 * once it knows of the watcher, which it learns from the manager's next snapshot.
 */
async function watching(cli: TelepresenceCli, name: string, probe: { alice?: boolean }, extra: readonly string[] = []): Promise<LongRunning> {
  const watch = cli.start(['watch', name, '--output', 'json', ...extra]);
  t.teardown(() => watch.stop());
  let n = 0;
  await eventually(
    async () => {
      if (watch.exited()) throw new Error(`watch ended: ${watch.output()}`);
      const prefix = `/probe-${name}-`;
      if (httpPaths(eventsOf(watch), prefix).length > 0) return;
      await send([{ path: `${prefix}${n++}`, ...probe }]);
      throw new Error('no probe seen yet');
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `a probe request in the watch of ${name}` },
  );
  return watch;
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

t.test('an unknown name: a user error that names the known engagements', async (t) => {
  const r = await alice.run(['watch', 'nope']);
  t.equal(r.exitCode, 2, r.stderr);
  t.match(r.stderr, /no intercept or wiretap is named "nope"/);
});

const N = 12;
const requests = Array.from({ length: N }, (_, i) => ({ path: `/r/${i}`, alice: i % 3 === 0 }));

t.test('a personal intercept: every request in order, answered by the workstation or the app, credentials masked', async (t) => {
  const port = await workstation('alice');
  await alice.ok(['intercept', 'web', '--port', `${port}:http`, '--http-header', 'x-user=alice', '--name', 'web-alice', '--mount', 'false'], 300_000);
  const watch = await watching(alice, 'web-alice', { alice: true });
  const sent = await send(requests);
  t.strictSame(
    sent.map((s) => [s.path, s.host === 'alice' ? 'workstation' : s.host.startsWith('web-') ? 'app' : s.host]),
    requests.map((r) => [r.path, r.alice ? 'workstation' : 'app']),
    'the requests were answered where the filter says',
  );
  const seen = await eventually(
    () => {
      const got = httpPaths(eventsOf(watch), '/r/');
      if (got.length < N) throw new Error(`${got.length} of ${N} seen`);
      return got;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'every request in the watch' },
  );
  t.strictSame(
    seen.map((e) => [e.method, e.path, e.status, e.answeredBy]),
    requests.map((r) => ['GET', r.path, r.alice ? 201 : 200, r.alice ? 'workstation' : 'app']),
    'each once, in order, with method, path, status and who answered',
  );
  t.ok(seen.every((e) => e.pod.startsWith('web-')), 'the pod that saw it');
  const auth = seen.map((e) => e.requestHeaders?.find((h) => h.name.toLowerCase() === 'authorization')?.value);
  t.ok(auth.every((v) => v === 'Bearer ••••••'), `Authorization masked: ${auth.join(', ')}`);
  t.notMatch(watch.output(), /e2e-secret/, 'the credential is nowhere in the output');
  await watch.stop();
  t.ok(watch.exited(), 'Ctrl-C (SIGTERM) ends it');
});

t.test('--show-credentials, and a late watcher first gets the kept events', async (t) => {
  const watch = alice.start(['watch', 'web-alice', '--output', 'json', '--show-credentials']);
  t.teardown(() => watch.stop());
  const kept = await eventually(
    () => {
      const got = httpPaths(eventsOf(watch), '/r/');
      if (got.length < N) throw new Error(`${got.length} of ${N} kept events; the watch printed:\n${watch.output().slice(-2000)}`);
      return got;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'the kept events' },
  );
  t.strictSame(
    kept.map((e) => e.path),
    requests.map((r) => r.path),
    'the same requests, in order, without sending any',
  );
  t.ok(kept.every((e) => e.requestHeaders?.some((h) => h.name.toLowerCase() === 'authorization' && h.value === 'Bearer e2e-secret')), 'shown when asked for');
  await watch.stop();
});

t.test('a global intercept, watched by its owner and by another client: all answered by the workstation; list counts them', async (t) => {
  await alice.ok(['leave', 'web-alice']);
  const port = await workstation('bob');
  await bob.ok(['intercept', 'web', '--port', `${port}:http`, '--name', 'web-bob', '--mount', 'false'], 300_000);
  const own = await watching(bob, 'web-bob', {});
  const other = alice.start(['watch', 'web-bob', '--output', 'json']);
  t.teardown(() => other.stop());
  const sent = await send(requests.map((r) => ({ path: r.path.replace('/r/', '/g/') })));
  t.ok(sent.every((s) => s.host === 'bob'), 'the intercept answered all');
  for (const [who, watch] of [['bob', own], ['alice', other]] as const) {
    const seen = await eventually(
      () => {
        const got = httpPaths(eventsOf(watch), '/g/');
        if (got.length < N) throw new Error(`${got.length} of ${N} seen by ${who}`);
        return got;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `every request in ${who}'s watch` },
    );
    t.strictSame(
      seen.map((e) => [e.path, e.status, e.answeredBy]),
      requests.map((r) => [r.path.replace('/r/', '/g/'), 201, 'workstation']),
      `${who} sees each, in order, answered by the workstation`,
    );
    t.ok(eventsOf(watch).some((e) => e.kind === 'tcp' && e.answeredBy === 'workstation'), `${who} sees the connections too`);
  }
  const stats = await eventually(
    async () => {
      const listed = await alice.json<{ workloads: Array<{ name: string; intercepts: Array<{ name: string; stats?: { connections: number; requests: number } }> }> }>(['list']);
      const s = listed.workloads.find((w) => w.name === 'web')?.intercepts.find((i) => i.name === 'web-bob')?.stats;
      if (s === undefined || s.connections < N) throw new Error(`stats: ${JSON.stringify(s)}`);
      return s;
    },
    { timeoutMs: 20_000, intervalMs: 500, what: 'the counts in list' },
  );
  t.ok(stats.requests >= N, `requests counted while watched: ${JSON.stringify(stats)}`);
  await bob.ok(['leave', 'web-bob']);
  await eventually(
    () => {
      if (!own.exited()) throw new Error('still running');
    },
    { timeoutMs: 20_000, intervalMs: 200, what: 'the watch ending with the intercept' },
  );
  // With --output json the error is a JSON object too.
  const ended = eventsOf(own).map((e) => (e as unknown as { error?: { code: string; message: string } }).error).find((e) => e !== undefined);
  t.match(ended, { code: 'intercept-ended', message: 'the intercept "web-bob" ended' }, 'says why');
});
