/**
 * Outbound access end to end: after `kubectl telepresence connect`, the workstation reaches the
 * cluster's Services by name (short, `name.ns`, fully qualified), headless StatefulSet pods, pod
 * IPs and ClusterIPs, over TCP and UDP, while names outside the cluster still resolve through the
 * workstation's own DNS; after `quit` nothing of it remains.
 *
 * The workstation is a network namespace of its own (test/src/workstation-netns.ts) that reaches
 * only the API server: the cluster's node is this machine, so from the root namespace every pod
 * and service address answers anyway and a passing curl would prove nothing. In the namespace,
 * /etc/resolv.conf names a dnsmasq on 127.0.0.1 that stands for the workstation's DNS.
 *
 * Grouped by state, in order: not connected; connect refused (bad input); connected; connected
 * while the traffic-manager goes away; after quit. One Kubernetes namespace per run.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { List, Pod, Service } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, clusterIpService, echoDeployment, namespace } from '../src/manifests.js';
import { processRunner, type RunResult } from '../src/process-runner.js';
import {
  OUTSIDE_ADDRESS,
  OUTSIDE_NAME,
  createWorkstationNetns,
  ipv4Contains,
  type WorkstationNetns,
} from '../src/workstation-netns.js';

t.setTimeout(40 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-out-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const MANAGER_PODS = 'app.kubernetes.io/name=traffic-manager';
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const UDP_PORT = 9999;
const KAFKA_PORT = 8080;

// ---------------------------------------------------------------------------------------------
// Fixtures

/**
 * The StatefulSet's server: says which pod answered, and on /stream sends a line every 200 ms
 * for as long as the client listens (the long-lived flow of the manager-goes-away case).
 */
const KAFKA_SCRIPT = `
const os = require('node:os');
require('node:http').createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  if (req.url === '/stream') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const timer = setInterval(() => res.write('tick ' + n++ + '\\n'), 200);
    res.on('close', () => clearInterval(timer));
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ host: os.hostname() }));
}).listen(${KAFKA_PORT});
process.on('SIGTERM', () => process.exit(0));`;

/** Answers each datagram with `echo <pod> <datagram>`. */
const UDP_SCRIPT = `
const os = require('node:os');
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, from) => s.send('echo ' + os.hostname() + ' ' + m.toString(), from.port, from.address));
s.bind(${UDP_PORT});
process.on('SIGTERM', () => process.exit(0));`;

const scriptContainer = (script: string, ports: object[]): object => ({
  name: 'main',
  image: ECHO_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  command: ['node', '-e', script],
  ports,
  resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
});

const kafkaObjects: object[] = [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kafka', namespace: ns },
    spec: { clusterIP: 'None', selector: { app: 'kafka' }, ports: [{ name: 'http', port: KAFKA_PORT, targetPort: KAFKA_PORT }] },
  },
  {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'kafka', namespace: ns },
    spec: {
      serviceName: 'kafka',
      replicas: 1,
      selector: { matchLabels: { app: 'kafka' } },
      template: {
        metadata: { labels: { app: 'kafka' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              ...scriptContainer(KAFKA_SCRIPT, [{ name: 'http', containerPort: KAFKA_PORT }]),
              readinessProbe: { httpGet: { path: '/healthz', port: KAFKA_PORT }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  },
];

const udpObjects: object[] = [
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'udp-echo', namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'udp-echo' } },
      template: {
        metadata: { labels: { app: 'udp-echo' } },
        spec: { terminationGracePeriodSeconds: 1, containers: [scriptContainer(UDP_SCRIPT, [{ name: 'udp', containerPort: UDP_PORT, protocol: 'UDP' }])] },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'udp-echo', namespace: ns },
    spec: { selector: { app: 'udp-echo' }, ports: [{ name: 'udp', port: UDP_PORT, targetPort: UDP_PORT, protocol: 'UDP' }] },
  },
];

/** A long-running pod from which requests are sent into the cluster. */
const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }] },
};

// ---------------------------------------------------------------------------------------------
// Helpers

let ws: WorkstationNetns;

/** Addresses of the fixtures, read once they run. */
const addr = { ordersClusterIp: '', ordersPodIp: '', ordersPod: '', kafkaPodIp: '', udpClusterIp: '', udpPodIp: '', udpPod: '' };

/** `kubectl telepresence <args> --namespace <ns>` inside the namespace, as root. */
function tp(args: readonly string[], timeoutMs = 180_000): Promise<RunResult> {
  return ws.run(['kubectl', 'telepresence', ...args, '--namespace', ns], { timeoutMs });
}

async function tpOk(args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await tp(args, timeoutMs);
  if (r.exitCode !== 0) throw new Error(`kubectl telepresence ${args.join(' ')} exited ${String(r.exitCode)}:\n${r.stdout}${r.stderr}\n--- daemon log (end) ---\n${ws.daemonLog().slice(-3000)}`);
  return r.stdout;
}

interface OutboundJson {
  state: string;
  device: string;
  routed: string[];
  neverProxied: string[];
  dnsDomains: string[];
  dnsRedirected: string[];
  tcpFlows: number;
  udpFlows: number;
  activeFlows: number;
  dnsClusterQueries: number;
  dnsUpstreamQueries: number;
  error?: string;
}
interface StatusJson {
  daemon: { running: boolean };
  connection?: { connected: boolean; error?: string; outbound?: OutboundJson };
}

async function status(): Promise<StatusJson> {
  return JSON.parse(await tpOk(['status', '--output', 'json'], 30_000)) as StatusJson;
}

async function outbound(): Promise<OutboundJson> {
  const s = await status();
  if (s.connection?.outbound === undefined) throw new Error(`status has no connection.outbound: ${JSON.stringify(s)}`);
  return s.connection.outbound;
}

interface Fetched {
  readonly code: number | null;
  readonly body: string;
  readonly stderr: string;
  readonly ms: number;
}

/** curl inside the namespace: a fresh connection, bounded by `maxSeconds`. */
async function curl(url: string, maxSeconds = 10): Promise<Fetched> {
  const started = Date.now();
  const r = await ws.run(['curl', '-sS', '--max-time', String(maxSeconds), url], { timeoutMs: (maxSeconds + 10) * 1000 });
  return { code: r.exitCode, body: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** The `host` an echo-style JSON answer names. */
function hostIn(f: Fetched): string {
  try {
    return (JSON.parse(f.body) as { host?: string }).host ?? `(no host in ${f.body})`;
  } catch {
    return `(curl exit ${String(f.code)}: ${f.stderr.trim()}${f.body.slice(0, 200)})`;
  }
}

async function getentHosts(name: string): Promise<{ code: number | null; out: string; ms: number }> {
  const started = Date.now();
  const r = await ws.run(['getent', 'hosts', name], { timeoutMs: 30_000 });
  return { code: r.exitCode, out: r.stdout.trim(), ms: Date.now() - started };
}

/** Sends one datagram from inside the namespace and returns the answer (or throws after 5 s). */
async function udpExchange(host: string, port: number, payload: string): Promise<string> {
  const script = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m) => { console.log(m.toString()); process.exit(0); });
s.on('error', (e) => { console.error('ERROR ' + e.message); process.exit(1); });
s.send(process.argv[3], Number(process.argv[2]), process.argv[1]);
setTimeout(() => { console.error('no answer within 5 s'); process.exit(1); }, 5000);`;
  const r = await ws.run(['node', '-e', script, host, String(port), payload], { timeoutMs: 20_000 });
  if (r.exitCode !== 0) throw new Error(`UDP to ${host}:${port}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** GETs `url` from the `client` pod inside the cluster; the body, or 'ERROR ...'. */
async function fromCluster(url: string): Promise<string> {
  const script = `fetch(process.argv[1], { signal: AbortSignal.timeout(8000) })
    .then((r) => r.text()).then((b) => console.log(b))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  const r = await processRunner.run('kubectl', ['-n', ns, 'exec', 'client', '--', 'node', '-e', script, url], {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
    timeoutMs: 30_000,
  });
  return r.stdout.trim() || `ERROR kubectl exec exited ${String(r.exitCode)}: ${r.stderr.trim()}`;
}

async function podOf(app: string): Promise<Pod> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`]);
  const pod = list.items.find((p) => p.metadata.deletionTimestamp === undefined && p.status?.podIP !== undefined);
  if (pod === undefined) throw new Error(`no running pod of ${app}`);
  return pod;
}

async function clusterIpOf(service: string): Promise<string> {
  const svc = await kube.json<Service>(['-n', ns, 'get', 'service', service]);
  const ip = svc.spec?.clusterIP;
  if (ip === undefined || ip === 'None') throw new Error(`service ${service} has no ClusterIP`);
  return ip;
}

/** Fails the test with the daemon's log attached, for failures that are the product's. */
function withLog(t: Test, message: string): string {
  t.comment(`daemon log (end):\n${ws.daemonLog().slice(-4000)}`);
  // Root's network daemon logs to root's cache folder, shared by every root connect on this machine.
  t.comment(`network daemon log (end):\n${readTail(NETWORK_DAEMON_LOG, 3000)}`);
  return message;
}

const NETWORK_DAEMON_LOG = '/root/.cache/telepresence-ts/network-daemon.log';

function readTail(path: string, chars: number): string {
  try {
    return readFileSync(path, 'utf8').slice(-chars);
  } catch {
    return `(no ${path})`;
  }
}

/** The manager runs the image just built: an older manager would be missing outbound access altogether. */
async function ensureFreshManager(): Promise<void> {
  const ref = `tp-local/traffic-manager:${VERSION}`;
  const inspect = await processRunner.run('docker', ['image', 'inspect', '--format', '{{.Id}}', ref], { timeoutMs: 30_000 });
  const built = inspect.stdout.trim();
  const pods = await kube.json<List<Pod & { status?: { containerStatuses?: Array<{ imageID?: string }> } }>>(['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_PODS]);
  const running = pods.items.flatMap((p) => (p.status?.containerStatuses ?? []).map((c) => c.imageID ?? ''));
  if (built !== '' && running.length > 0 && running.every((id) => id.endsWith(built.replace(/^sha256:/, '')))) return;
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', 'deployment/traffic-manager']);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=180s'], { timeoutMs: 190_000 });
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([
    namespace(ns),
    echoDeployment(ns, 'orders', 1),
    clusterIpService(ns, 'orders', 80),
    ...kafkaObjects,
    ...udpObjects,
    echoDeployment(ns, 'gateway', 1),
    clusterIpService(ns, 'gateway', 80),
    clientPod,
  ]);
  ws = await createWorkstationNetns({ repoRoot, kubeconfig: cluster.kubeconfig });
  t.comment(`workstation namespace ${ws.name}: ${ws.subnet.nsAddress} on ${ws.subnet.cidr}, reaching only ${ws.apiServer}`);
  for (const d of ['orders', 'udp-echo', 'gateway']) {
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${d}`, '--timeout=180s'], { timeoutMs: 190_000 });
  }
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'statefulset/kafka', '--timeout=180s'], { timeoutMs: 190_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s'], { timeoutMs: 190_000 });
  // Installing needs only the API server: done from the workstation like everything else.
  await tpOk(['install'], 300_000);
  await ensureFreshManager();

  const orders = await podOf('orders');
  const udp = await podOf('udp-echo');
  Object.assign(addr, {
    ordersClusterIp: await clusterIpOf('orders'),
    ordersPodIp: orders.status?.podIP ?? '',
    ordersPod: orders.metadata.name,
    kafkaPodIp: (await kube.json<Pod>(['-n', ns, 'get', 'pod', 'kafka-0'])).status?.podIP ?? '',
    udpClusterIp: await clusterIpOf('udp-echo'),
    udpPodIp: udp.status?.podIP ?? '',
    udpPod: udp.metadata.name,
  });
});

t.teardown(async () => {
  // Stops every process inside (daemons included), then removes the namespace and its veth.
  if (ws !== undefined) {
    try {
      await tp(['quit'], 30_000);
    } finally {
      await ws.destroy();
    }
  }
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

// ---------------------------------------------------------------------------------------------
// Not connected: the namespace is isolated

t.test('not connected: the ClusterIP and a pod IP are unreachable, at once', async (t) => {
  for (const [what, url] of [
    ['the ClusterIP of orders', () => `http://${addr.ordersClusterIp}/`],
    ['the pod IP of orders', () => `http://${addr.ordersPodIp}:8080/`],
  ] as const) {
    const f = await curl(url(), 5);
    t.equal(f.code, 7, `${what}: curl cannot connect (${f.stderr.trim()})`);
    t.ok(f.ms < 3_000, `${what}: and says so within 3 s (${f.ms} ms)`);
  }
});

t.test("not connected: cluster names do not resolve, the workstation's own DNS does", async (t) => {
  const cluster = await getentHosts(`orders.${ns}`);
  t.equal(cluster.code, 2, `orders.${ns} is not found (${cluster.out})`);
  const outside = await getentHosts(OUTSIDE_NAME);
  t.equal(outside.code, 0, `${OUTSIDE_NAME} resolves`);
  t.match(outside.out, new RegExp(`^${OUTSIDE_ADDRESS.replace(/\./g, '\\.')}\\s`), `to ${OUTSIDE_ADDRESS}`);
});

// ---------------------------------------------------------------------------------------------
// Connect refused: bad input

const conflicts = (): Array<{ name: string; also: string; route: string }> => [
  { name: "the namespace's own veth /30", also: ws.subnet.cidr, route: ws.subnet.cidr },
  { name: 'a /24 around the veth /30', also: '10.243.254.0/24', route: ws.subnet.cidr },
  { name: "a /24 around the API server's host route", also: `${ws.apiServer.split('.').slice(0, 3).join('.')}.0/24`, route: `${ws.apiServer}/32` },
];

t.test('bad input: --also-proxy overlapping a route of the workstation is refused', async (t) => {
  for (const c of conflicts()) {
    t.test(c.name, async (t) => {
      const r = await tp(['connect', '--also-proxy', c.also]);
      t.equal(r.exitCode, 2, `a user error (exit 2), code subnet-conflict:\n${r.stderr}`);
      const first = r.stderr.trim().split('\n')[0] ?? '';
      t.ok(first.includes(c.also) && first.includes(c.route), `one line names ${c.also} and ${c.route}: ${first}`);
      t.match(r.stderr, new RegExp(`--never-proxy ${c.route.replace(/[./]/g, '\\$&')}`), 'and says which --never-proxy would settle it');
      t.not((await status()).connection?.connected, true, 'no session is kept');
      t.strictSame(await ws.leftovers(['processes', 'sockets']), [], 'no device, route, rule, redirect or resolver change is left');
    });
  }
});

t.test('bad input: connect without root says what to run and leaves nothing', async (t) => {
  const nobody = await ws.unprivileged();
  const as = { as: nobody, env: nobody.env, timeoutMs: 180_000 };
  const r = await ws.run(['kubectl', 'telepresence', 'connect', '--namespace', ns], as);
  t.equal(r.exitCode, 3, `a configuration error (exit 3), code needs-root:\n${r.stdout}${r.stderr}`);
  t.match(r.stderr, /needs root/, 'says that root is needed');
  t.match(r.stderr, new RegExp(`sudo .*network-daemon --owner ${nobody.uid}`), 'names the command that starts the network daemon for this user');
  t.match(r.stderr, /--outbound=false/, 'and the way to connect for intercepts only');
  t.strictSame(await ws.leftovers(['processes', 'sockets']), [], 'no device, route, rule, redirect or resolver change is left');
  const quit = await ws.run(['kubectl', 'telepresence', 'quit'], as);
  t.equal(quit.exitCode, 0, `quit as that user succeeds: ${quit.stderr}`);
});

t.test('bad input: after quit, the refused connects have left nothing at all', async (t) => {
  await tpOk(['quit'], 30_000);
  const left = await eventually(
    async () => {
      const l = await ws.leftovers();
      if (l.length > 0) throw new Error(l.join('\n'));
      return l;
    },
    { timeoutMs: 15_000, intervalMs: 250, what: 'nothing left after quit' },
  ).catch((err: unknown) => [String(err)]);
  t.strictSame(left, [], 'no process, socket, device, route, rule, redirect or resolver change');
});

// ---------------------------------------------------------------------------------------------
// Connected

let atConnect: OutboundJson | undefined;
let dnsLogAtConnect = 0;

t.test('connect brings outbound access up', async (t) => {
  const out = await tpOk(['connect']);
  t.match(out, /Outbound access: .* routed into tpts\d+/, `connect reports what it routes:\n${out}`);
  const o = await outbound();
  atConnect = o;
  dnsLogAtConnect = ws.dnsLog().length;
  t.equal(o.state, 'up', `outbound state up${o.error !== undefined ? ` (error: ${o.error})` : ''}`);
  t.match(o.device, /^tpts\d+$/, 'a tpts device');
  const links = (await ws.run(['ip', '-d', '-j', 'link', 'show', 'dev', o.device])).stdout;
  t.match(links, /"info_kind":"tun"/, `the device exists in the workstation's namespace and is a TUN device`);
  for (const [what, ip] of [
    ['the ClusterIP of orders', addr.ordersClusterIp],
    ['the pod IP of orders', addr.ordersPodIp],
    ['the pod IP of kafka-0', addr.kafkaPodIp],
  ] as const) {
    t.ok(o.routed.some((c) => ipv4Contains(c, ip)), `a routed subnet holds ${what} (${ip}): ${o.routed.join(', ')}`);
    const route = await ws.run(['ip', 'route', 'get', ip]);
    t.match(route.stdout, new RegExp(`dev ${o.device}\\b`), `the kernel sends ${ip} into ${o.device}`);
  }
  t.ok(o.dnsDomains.includes('cluster.local'), `the cluster domain is answered by the cluster: ${o.dnsDomains.join(', ')}`);
  t.strictSame(o.dnsRedirected, ['127.0.0.1'], "the workstation's nameserver (127.0.0.1) is redirected");
});

t.test('connected: HTTP by name, pod IP and ClusterIP', async (t) => {
  const cases: Array<[string, () => string, (host: string) => boolean]> = [
    ['the short name, in the connected namespace', () => 'http://orders/', (h) => h.startsWith('orders-')],
    ['name.namespace', () => `http://orders.${ns}/`, (h) => h.startsWith('orders-')],
    ['the fully qualified name', () => `http://orders.${ns}.svc.cluster.local/`, (h) => h.startsWith('orders-')],
    ['a headless StatefulSet pod by name', () => `http://kafka-0.kafka.${ns}:${KAFKA_PORT}/`, (h) => h === 'kafka-0'],
    ['a pod IP', () => `http://${addr.ordersPodIp}:8080/`, (h) => h === addr.ordersPod],
    ['the ClusterIP', () => `http://${addr.ordersClusterIp}/`, (h) => h.startsWith('orders-')],
  ];
  for (const [what, url, wanted] of cases) {
    t.test(what, async (t) => {
      const f = await curl(url());
      const host = hostIn(f);
      t.ok(wanted(host), f.code === 0 ? `${url()} answered by ${host}` : withLog(t, `${url()}: ${host}`));
    });
  }
});

t.test('connected: UDP datagrams reach a pod and its echo comes back', async (t) => {
  const cases: Array<[string, () => string]> = [
    ['to the ClusterIP', () => addr.udpClusterIp],
    ['to the pod IP', () => addr.udpPodIp],
    ['to the Service by name', () => `udp-echo.${ns}`],
  ];
  for (const [what, host] of cases) {
    t.test(what, async (t) => {
      const token = randomBytes(6).toString('hex');
      const answer = await udpExchange(host(), UDP_PORT, token).catch((err: unknown) => withLog(t, String(err)));
      t.equal(answer, `echo ${addr.udpPod} ${token}`, `the pod echoed the datagram (${host()}:${UDP_PORT})`);
    });
  }
});

t.test("connected: cluster names resolve through the cluster, others through the workstation's DNS", async (t) => {
  const orders = await getentHosts(`orders.${ns}`);
  t.equal(orders.code, 0, `orders.${ns} resolves`);
  t.match(orders.out, new RegExp(`^${addr.ordersClusterIp.replace(/\./g, '\\.')}\\s`), `to its ClusterIP ${addr.ordersClusterIp}`);
  const kafka = await getentHosts(`kafka-0.kafka.${ns}`);
  t.match(kafka.out, new RegExp(`^${addr.kafkaPodIp.replace(/\./g, '\\.')}\\s`), `kafka-0.kafka.${ns} resolves to the pod's IP ${addr.kafkaPodIp}`);
  const outside = await getentHosts(OUTSIDE_NAME);
  t.match(outside.out, new RegExp(`^${OUTSIDE_ADDRESS.replace(/\./g, '\\.')}\\s`), `${OUTSIDE_NAME} still resolves to ${OUTSIDE_ADDRESS}`);

  const seen = ws.dnsLog().slice(dnsLogAtConnect);
  t.match(seen, new RegExp(`query\\[A\\] ${OUTSIDE_NAME.replace(/\./g, '\\.')} `), `the workstation's own DNS was asked for ${OUTSIDE_NAME}`);
  t.notMatch(seen, new RegExp(`query\\[\\w+\\] orders\\.${ns}`), `and never for orders.${ns}: the cluster answered it`);
});

t.test('connected: a name that does not exist is NXDOMAIN at once', async (t) => {
  for (const name of ['no-such-service', `no-such-service.${ns}`, `no-such-service.${ns}.svc.cluster.local`, `no-such-namespace-${ns}.svc.cluster.local`, 'nothing-here.test']) {
    const r = await getentHosts(name);
    t.equal(r.code, 2, `${name}: not found (getent exit 2)`);
    t.ok(r.ms < 2_000, `${name}: answered in ${r.ms} ms (under 2 s: no resolver timeout)`);
  }
});

t.test('connected: status counts the flows and DNS questions carried', async (t) => {
  const before = atConnect;
  if (before === undefined) {
    t.fail('connect did not report outbound status');
    return;
  }
  const now = await outbound();
  t.ok(now.tcpFlows > before.tcpFlows, `TCP flows grew: ${before.tcpFlows} -> ${now.tcpFlows}`);
  t.ok(now.udpFlows > before.udpFlows, `UDP flows grew: ${before.udpFlows} -> ${now.udpFlows}`);
  t.ok(now.dnsClusterQueries > before.dnsClusterQueries, `questions answered by the cluster grew: ${before.dnsClusterQueries} -> ${now.dnsClusterQueries}`);
  t.ok(now.dnsUpstreamQueries > before.dnsUpstreamQueries, `questions passed on grew: ${before.dnsUpstreamQueries} -> ${now.dnsUpstreamQueries}`);
  t.ok(now.activeFlows >= 0, `open flows reported (${now.activeFlows})`);
});

/**
 * Short-lived connections one after another, each with its own deadline. Prints one JSON line:
 * how many completed, the failures (first few), and the slowest and median times.
 */
const MANY_CONNECTIONS_SCRIPT = String.raw`
const http = require('node:http');
const [url, count, boundMs, budgetMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const ask = () => new Promise((resolve) => {
  const started = process.hrtime.bigint();
  const done = (error) => resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, error });
  const req = http.get(url, { agent: false }, (res) => { res.resume(); res.on('end', () => done(res.statusCode === 200 ? undefined : 'status ' + res.statusCode)); });
  req.setTimeout(boundMs, () => req.destroy(new Error('no answer within ' + boundMs + ' ms')));
  req.on('error', (e) => done(e.message));
});
(async () => {
  const deadline = Date.now() + budgetMs;
  const times = []; const failures = [];
  let slowest = { ms: 0, i: -1 };
  // Twenty failures say enough; the rest would only spend the time budget.
  for (let i = 0; i < count && Date.now() < deadline && failures.length < 20; i++) {
    const r = await ask();
    times.push(r.ms);
    if (r.ms > slowest.ms) slowest = { ms: r.ms, i };
    if (r.error) failures.push({ i, ms: Math.round(r.ms), error: r.error });
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ completed: times.length, failed: failures.length, failures: failures.slice(0, 5), slowestMs: Math.round(slowest.ms), slowestIndex: slowest.i,
    p50Ms: times[Math.floor(times.length / 2)], p99Ms: times[Math.floor(times.length * 0.99)], over500Ms: times.filter((ms) => ms > 500).length }));
})();`;

t.test('connected: 4,000 short-lived connections in a row, none stalls', async (t) => {
  // 500 client ports for 4,000 connections: every port comes round again within seconds, the
  // case where a closed flow that the engine keeps in TIME_WAIT swallows the next SYN.
  // tw_reuse=1 lets the kernel reuse a port whose own side is in TIME_WAIT.
  const sysctls = { 'net.ipv4.ip_local_port_range': '50000 50499', 'net.ipv4.tcp_tw_reuse': '1' };
  const saved: Record<string, string> = {};
  for (const [k, v] of Object.entries(sysctls)) {
    saved[k] = (await ws.run(['sysctl', '-n', k])).stdout.trim();
    await ws.run(['sysctl', '-w', `${k}=${v}`]);
  }
  t.teardown(async () => {
    for (const [k, v] of Object.entries(saved)) await ws.run(['sysctl', '-w', `${k}=${v}`]);
  });
  const url = `http://${addr.ordersClusterIp}/`;
  const r = await ws.run(['node', '-e', MANY_CONNECTIONS_SCRIPT, url, '4000', '2000', '150000'], { timeoutMs: 200_000 });
  let result: { completed: number; failed: number; failures: unknown[]; slowestMs: number; slowestIndex: number; p50Ms: number; p99Ms: number; over500Ms: number };
  try {
    result = JSON.parse(r.stdout) as typeof result;
  } catch {
    t.fail(withLog(t, `the client printed no result (exit ${String(r.exitCode)}):\n${r.stdout}${r.stderr}`));
    return;
  }
  t.comment(`4,000 connections to ${url}: p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, slowest ${result.slowestMs} ms (#${result.slowestIndex}), ${result.over500Ms} over 500 ms`);
  t.equal(result.completed, 4000, 'all 4,000 were made within the 150 s budget');
  t.equal(result.failed, 0, `none failed or took over 2 s: ${JSON.stringify(result.failures)}`);
  t.ok(result.slowestMs < 2_000, `the slowest took ${result.slowestMs} ms`);
});

/**
 * The intercepting process: for each request it GETs http://orders/ (a Service of the cluster,
 * by its short name) and answers with what it got.
 */
const GATEWAY_SCRIPT = `
require('node:http').createServer(async (req, res) => {
  let orders;
  try {
    orders = await (await fetch('http://orders/', { signal: AbortSignal.timeout(5000) })).json();
  } catch (e) {
    orders = { error: String(e && e.cause ? e.cause.message || e.cause : e) };
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ via: 'workstation', orders }));
}).listen(Number(process.env.OUTBOUND_TEST_PORT), '127.0.0.1', () => console.log('gateway listening'));`;

t.test('connected: an intercepted -- cmd answers the cluster by calling another Service by name', async (t) => {
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  const intercept = ws.spawn(
    ['kubectl', 'telepresence', 'intercept', 'gateway', '--port', `${port}:http`, '--mount=false', '--namespace', ns, '--', 'node', '-e', GATEWAY_SCRIPT],
    { env: { ...ws.env, OUTBOUND_TEST_PORT: String(port) } },
  );
  t.teardown(() => intercept.stop());
  await intercept.waitForOutput(/gateway listening/, 300_000);
  const body = await eventually(
    async () => {
      const b = await fromCluster(`http://gateway.${ns}/`);
      if (!b.includes('"via":"workstation"')) throw new Error(`answered by ${b.slice(0, 200)}`);
      return b;
    },
    { timeoutMs: 120_000, intervalMs: 1000, what: 'a request from the cluster answered by the intercepting command' },
  ).catch((err: unknown) => withLog(t, `${String(err)}\n--- intercept output ---\n${intercept.output()}`));
  let answer: { via?: string; orders?: { host?: string; error?: string } } = {};
  try {
    answer = JSON.parse(body) as typeof answer;
  } catch {
    // Reported by the assertions below.
  }
  t.equal(answer.via, 'workstation', `the request from the cluster reached the command on the workstation: ${body.slice(0, 300)}`);
  t.match(answer.orders?.host, /^orders-/, `and the command's call to http://orders/ was answered by orders (${JSON.stringify(answer.orders)})`);
  await tpOk(['leave', `gateway-${ns}`], 60_000);
  await eventually(
    async () => {
      if (!intercept.exited()) throw new Error('the command still runs');
    },
    { timeoutMs: 30_000, intervalMs: 250, what: 'the intercepted command ending after leave' },
  );
  t.pass('leaving the intercept ended the command');
});

t.test('connected: a workload that carries the traffic-agent is reached at its app, from the workstation as from a pod', async (t) => {
  // gateway has kept its agent since the intercept above. Every outbound flow leaves from the
  // traffic-manager's pod, whose connections the agent also sees as the source of routing probes.
  for (const url of ['http://gateway/', `http://gateway.${ns}/`]) {
    const f = await curl(url);
    const host = hostIn(f);
    t.ok(host.startsWith('gateway-'), f.code === 0 ? `${url} answered by the app of ${host}` : withLog(t, `${url}: ${host}`));
  }
});

// ---------------------------------------------------------------------------------------------
// Connected, while the traffic-manager goes away

t.test('connected: a flow open while the traffic-manager goes away ends with an error, and new flows work once it is back', async (t) => {
  // One line per 200 ms for as long as the flow lasts; the shell prints curl's exit status.
  const url = `http://kafka-0.kafka.${ns}:${KAFKA_PORT}/stream`;
  const stream = ws.spawn(['sh', '-c', `curl -sS -N --max-time 120 ${url}; echo "curl-exit=$?"`]);
  t.teardown(() => stream.stop());
  await stream.waitForOutput(/tick 3\n/, 20_000);
  const oldPods = (await kube.json<List<Pod>>(['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_PODS])).items.map((p) => p.metadata.name);
  t.ok(oldPods.length > 0, `the manager runs (${oldPods.join(', ')})`);

  const deletedAt = Date.now();
  await kube.kubectl(['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_PODS, '--wait=false']);
  const ended = await stream.waitForOutput(/curl-exit=(\d+)/, 60_000).catch((err: unknown) => {
    t.fail(withLog(t, `the flow did not end within 60 s of the manager's deletion: ${String(err)}`));
    return undefined;
  });
  if (ended !== undefined) {
    const code = Number(ended[1]);
    const after = Date.now() - deletedAt;
    t.not(code, 0, `curl reports an error (exit ${code}): ${stream.output().split('\n').filter((l) => !l.startsWith('tick')).join(' ')}`);
    t.not(code, 28, 'and not its own timeout: the flow was ended, not left hanging');
    t.ok(after < 30_000, `the flow ended ${after} ms after the manager's pod was deleted`);
  }

  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=180s'], { timeoutMs: 190_000 });
  const host = await eventually(
    async () => {
      const f = await curl(`http://orders.${ns}/`, 5);
      const h = hostIn(f);
      if (!h.startsWith('orders-')) throw new Error(h);
      return h;
    },
    { timeoutMs: 120_000, intervalMs: 1000, what: 'a new flow answered once the manager is back' },
  ).catch((err: unknown) => withLog(t, String(err)));
  t.match(host, /^orders-/, 'a new connection to orders is answered again, without reconnecting');
});

// ---------------------------------------------------------------------------------------------
// After quit

t.test('after quit: the cluster is out of reach again and nothing remains', async (t) => {
  await tpOk(['quit'], 60_000);
  // What the namespace looks like the moment quit returns, for a failure below to explain itself.
  const right = await Promise.all([['ip', '-o', 'link'], ['ip', '-o', 'route'], ['ip', 'route', 'get', addr.ordersClusterIp]].map((argv) => ws.run(argv)));
  t.comment(`as quit returned:\n${right.map((r) => r.stdout + r.stderr).join('')}`);
  for (const [what, url] of [
    ['the ClusterIP of orders', `http://${addr.ordersClusterIp}/`],
    ['the pod IP of orders', `http://${addr.ordersPodIp}:8080/`],
    ['orders by name', `http://orders.${ns}/`],
  ] as const) {
    const f = await curl(url, 5);
    t.not(f.code, 0, `${what}: curl fails (exit ${String(f.code)}: ${f.stderr.trim()})`);
    t.ok(f.ms < 3_000, `${what}: at once (${f.ms} ms)`);
  }
  const orders = await getentHosts(`orders.${ns}`);
  t.equal(orders.code, 2, `orders.${ns} no longer resolves`);
  const outside = await getentHosts(OUTSIDE_NAME);
  t.match(outside.out, new RegExp(`^${OUTSIDE_ADDRESS.replace(/\./g, '\\.')}\\s`), `${OUTSIDE_NAME} still resolves`);
  const settled = async (ignore: Parameters<WorkstationNetns['leftovers']>[0], what: string): Promise<string[]> =>
    eventually(
      async () => {
        const l = await ws.leftovers(ignore);
        if (l.length > 0) throw new Error(l.join('\n'));
        return l;
      },
      { timeoutMs: 15_000, intervalMs: 250, what },
    ).catch((err: unknown) => [String(err)]);
  t.strictSame(await settled(['processes', 'sockets'], 'no network change left after quit'), [], 'no TUN device, route, rule, iptables chain or resolver change remains');
  // As Telepresence's quit does: the daemons go too, the root one included.
  t.strictSame(await settled([], 'no daemon left after quit'), [], 'no daemon process or socket remains either');
});
