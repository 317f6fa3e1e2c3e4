/**
 * `replace` end to end on the real cluster, with a queue-consumer-like workload: a container that
 * POSTs a heartbeat to a sink Service every 200 ms (its "consumption"), and serves two ports
 * (one reached through a named targetPort, one through a numeric one). While replaced, no replica
 * runs the container (the sink hears nothing from it), both ports of every replica answer from the
 * workstation, each on its mapped local port, and the workstation has the container's
 * environment; after `leave` every replica runs it again and the heartbeats resume. A second
 * developer (a second daemon) cannot replace a container the first one intercepts.
 *
 * Shares the cluster with other suites: installs the manager only when it is missing (and rolls
 * it to this build's images when it runs older ones), never uninstalls it; one namespace of its
 * own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(30 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-repl-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const alice: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const bob: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const work = mkdtempSync(join(tmpdir(), 'tp-repl-'));
/** How the daemons name their user; both run here, so both have this name. */
const CLIENT_NAME = `${userInfo().username}@${hostname()}`;
const REPLICAS = 2;

// ---------------------------------------------------------------------------------------------
// Fixtures

/** The sink: counts heartbeats (POST, body: the sender's hostname); GET answers the count. */
const SINK_SCRIPT = `
const http = require('node:http');
let count = 0;
const from = {};
http.createServer((q, s) => {
  if (q.method !== 'POST') return s.end(JSON.stringify({ count, from }));
  let body = '';
  q.on('data', (c) => (body += c));
  q.on('end', () => { count++; from[body] = (from[body] || 0) + 1; s.end('ok'); });
}).listen(8080);
`;

/** The consumer: a heartbeat every 200 ms, and two ports that say they are the cluster's. */
const CONSUMER_SCRIPT = `
const http = require('node:http');
const os = require('node:os');
setInterval(() => {
  fetch(process.env.SINK_URL, { method: 'POST', body: os.hostname(), signal: AbortSignal.timeout(1000) }).catch(() => {});
}, 200);
for (const port of [8080, 9090]) http.createServer((q, s) => s.end(JSON.stringify({ who: 'cluster', port }))).listen(port);
`;

function deployment(name: string, replicas: number, container: object): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { terminationGracePeriodSeconds: 1, containers: [container] } },
    },
  };
}

const objects = [
  namespace(ns),
  deployment('sink', 1, {
    name: 'sink',
    image: ECHO_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    command: ['node', '-e', SINK_SCRIPT],
    ports: [{ name: 'http', containerPort: 8080 }],
    readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 1 },
  }),
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'sink', namespace: ns }, spec: { selector: { app: 'sink' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  deployment('worker', REPLICAS, {
    name: 'consumer',
    image: ECHO_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    command: ['node', '-e', CONSUMER_SCRIPT],
    env: [
      { name: 'SINK_URL', value: `http://sink.${ns}/beat` },
      { name: 'QUEUE', value: 'orders' },
    ],
    ports: [
      { name: 'http', containerPort: 8080 },
      { name: 'admin', containerPort: 9090 },
    ],
    readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
  }),
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'worker', namespace: ns },
    // One symbolic targetPort (the agent takes the name) and one numeric (the init container's redirect).
    spec: { selector: { app: 'worker' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'admin', port: 9090, targetPort: 9090 }] },
  },
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'client', namespace: ns },
    spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }] },
  },
];

/** GETs `url` from inside the cluster `times` times (new connections), and returns the bodies. */
async function fromCluster(url: string, times = 1): Promise<string[]> {
  const script = `(async () => { const out = [];
    for (let i = 0; i < Number(process.argv[2]); i++) {
      out.push(await fetch(process.argv[1], { signal: AbortSignal.timeout(5000), headers: { connection: 'close' } })
        .then((r) => r.text()).catch((e) => 'ERROR ' + e.message));
    }
    console.log(JSON.stringify(out)); })();`;
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, url, String(times)], { timeoutMs: 60_000 });
  return JSON.parse(out.trim()) as string[];
}

/** How many heartbeats the sink has had. */
async function heartbeats(): Promise<number> {
  const [body] = await fromCluster(`http://sink.${ns}/`);
  return (JSON.parse(body ?? '') as { count: number }).count;
}

/** The worker's pods, terminating ones included, with their containers' names. */
async function workerPods(): Promise<Array<{ name: string; terminating: boolean; ready: boolean; containers: string[] }>> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', 'app=worker']);
  return list.items.map((p) => ({
    name: p.metadata.name,
    terminating: p.metadata.deletionTimestamp !== undefined,
    ready: (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    containers: (p.spec?.containers ?? []).map((c) => c.name),
  }));
}

/** A local HTTP server that answers `{who: 'local', port}`, until the end of the file. */
async function localServer(port: number): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume();
    res.end(JSON.stringify({ who: 'local', port }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((ok) => server.close(() => ok()));
  });
  return (server.address() as AddressInfo).port;
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

/** Rolls a manager Deployment to the image just built when its pod runs another one. */
async function useBuiltImage(deploymentName: string, image: string): Promise<void> {
  const id = (await processRunner.run('docker', ['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim();
  const pods = await kube.json<List<Pod>>(['-n', MANAGER_NS, 'get', 'pods']);
  const running = pods.items.filter((p) => p.metadata.name.startsWith(`${deploymentName}-`) && p.metadata.deletionTimestamp === undefined);
  if (running.length > 0 && running.every((p) => p.status?.containerStatuses?.[0]?.imageID === id)) return;
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', `deployment/${deploymentName}`]);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', `deployment/${deploymentName}`, '--timeout=180s'], { timeoutMs: 190_000 });
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await alice.ok(['install'], 300_000);
  await useBuiltImage('traffic-manager', `tp-local/traffic-manager:${VERSION}`);
  await useBuiltImage('agent-injector', `tp-local/agent-injector:${VERSION}`);
  await kube.apply(objects);
  for (const d of ['sink', 'worker']) await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${d}`, '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  await alice.ok(['connect']);
  await bob.ok(['connect']);
});

t.teardown(async () => {
  await alice.dispose();
  await bob.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Cases

t.test('a replace of a container another developer intercepts is refused, naming them, and changes nothing', async (t) => {
  const local = await localServer(8080);
  await alice.ok(['intercept', 'worker', '--port', `${local}:http`, '--mount=false'], 300_000);
  const before = (await workerPods()).filter((p) => !p.terminating).map((p) => p.name).sort();
  const res = await bob.run(['replace', 'worker', '--mount=false'], 120_000);
  t.not(res.exitCode, 0, 'refused');
  t.match(
    res.stderr,
    `container consumer of deployment/worker (namespace ${ns}) cannot be replaced: ${CLIENT_NAME} intercepts its port 8080 (intercept "worker-${ns}")`,
    `names the holder and the intercept:\n${res.stderr}`,
  );
  t.match(res.stderr, /hint: a replace takes every port of the container; ask .* to leave/);
  const after = await workerPods();
  t.strictSame(after.filter((p) => !p.terminating).map((p) => p.name).sort(), before, 'no pod was replaced');
  t.ok(after.every((p) => p.containers.includes('consumer')), 'every pod still runs the container');
  await alice.ok(['leave', `worker-${ns}`]);
});

t.test('replace: the container stops in every replica, both ports come to the workstation, leave brings it back', async (t) => {
  const httpLocal = await localServer(8080);
  const adminLocal = await localServer(9090);
  const envJson = join(work, 'worker.json');
  const out = await alice.ok(['replace', 'worker', '--port', `${httpLocal}:8080`, '--port', `${adminLocal}:9090`, '--env-json', envJson, '--mount=false'], 300_000);
  t.match(out, /Replace name {3}: worker-.*-replace/, out);
  t.match(out, /Replicas {7}: every replica runs without consumer/);

  // (a) No replica runs the container; once the old pods are gone, the sink hears nothing more.
  await eventually(
    async () => {
      const pods = await workerPods();
      const live = pods.filter((p) => !p.terminating);
      if (pods.some((p) => p.containers.includes('consumer'))) throw new Error(`a pod still runs consumer: ${JSON.stringify(pods)}`);
      if (live.length !== REPLICAS || !live.every((p) => p.ready && p.containers.includes('traffic-agent'))) throw new Error(`not yet ${REPLICAS} ready pods with the agent: ${JSON.stringify(pods)}`);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'every replica without the consumer container' },
  );
  const quietFrom = await heartbeats();

  // (b) Both ports of the workload, through its Service, answer from the workstation's mapped port.
  const http = await eventually(
    async () => {
      const bodies = await fromCluster(`http://worker.${ns}/`, 6);
      if (!bodies.every((b) => b.includes('"who":"local"'))) throw new Error(`not all from the workstation: ${bodies.join(' | ')}`);
      return bodies;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: 'the http port answered by the workstation' },
  );
  const portOf = (body: string): number => (JSON.parse(body) as { port: number }).port;
  t.ok(http.every((b) => portOf(b) === 8080), `container port 8080 reached local port ${httpLocal}`);
  const admin = await fromCluster(`http://worker.${ns}:9090/`, 6);
  t.ok(admin.every((b) => b.includes('"who":"local"') && portOf(b) === 9090), `container port 9090 (numeric targetPort) reached local port ${adminLocal}: ${admin.join(' | ')}`);

  t.equal(await heartbeats(), quietFrom, 'no heartbeat while replaced: nothing of the container runs in the cluster');
  const env = JSON.parse(readFileSync(envJson, 'utf8')) as Record<string, string>;
  t.equal(env['QUEUE'], 'orders', "the workstation has the container's environment");
  t.equal(env['TELEPRESENCE_CONTAINER'], 'consumer');

  const status = await alice.json<{ intercepts?: Array<{ name: string; mode: string; ports?: unknown }> }>(['status']);
  t.strictSame(
    status.intercepts?.map((i) => [i.mode, i.ports]),
    [['replace', [{ containerPort: 8080, localPort: httpLocal }, { containerPort: 9090, localPort: adminLocal }]]],
    'status --output json: the mode and where each port goes',
  );
  const intercept = await bob.run(['intercept', 'worker', '--port', `${await localServer(0)}:http`, '--mount=false'], 120_000);
  t.not(intercept.exitCode, 0);
  t.match(intercept.stderr, `is replaced by ${CLIENT_NAME} (replace "worker-${ns}-replace")`, 'an intercept of the replaced container is refused, naming the replacer');

  // (c) Leave: every replica runs the container again, and the heartbeats resume.
  await alice.ok(['leave', `worker-${ns}-replace`]);
  await eventually(
    async () => {
      const live = (await workerPods()).filter((p) => !p.terminating);
      if (live.length !== REPLICAS || !live.every((p) => p.ready && p.containers.includes('consumer'))) throw new Error(`not yet: ${JSON.stringify(live)}`);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'every replica running consumer again' },
  );
  await eventually(
    async () => {
      const n = await heartbeats();
      if (n < quietFrom + 5) throw new Error(`${n - quietFrom} heartbeats since`);
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'heartbeats again' },
  );
  const back = await eventually(
    async () => {
      const bodies = await fromCluster(`http://worker.${ns}/`, 4);
      if (!bodies.every((b) => b.includes('"who":"cluster"'))) throw new Error(bodies.join(' | '));
      return bodies;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the app answering again' },
  );
  t.equal(back.length, 4, 'the app answers its port again');
});
