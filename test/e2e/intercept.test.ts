/**
 * The intercept flow end to end, as a user drives it with `kubectl telepresence`, on the real
 * cluster: install, connect, intercept (prepare + activate), traffic from a pod answered on the
 * workstation, leave, the multi-container case, a killed client, a restricted user, uninstall.
 *
 * The cases run in order and share state, grouped by what the cluster looks like: no manager;
 * installed and connected; intercepted; uninstalled. One namespace per run, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { hostsAnswering } from '../src/fresh-gets.js';
import type { Deployment, List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createRestrictedUser } from '../src/restricted-user.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(30 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-icpt-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
/** A namespace that enforces Pod Security's restricted level. */
const strictNs = `${ns}-strict`;
const MANAGED_BY = 'app.kubernetes.io/managed-by=telepresence-ts';
const cli: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

// ---------------------------------------------------------------------------------------------
// Fixtures

const labels = (app: string) => ({ app });

/** A Deployment; `side` is a second container answering on ports 9090 and 9100. */
function deployment(name: string, withSide: boolean): object {
  const app = {
    name: 'app',
    image: ECHO_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    ports: [{ name: 'http', containerPort: 8080 }],
    readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
  };
  const side = {
    name: 'side',
    image: ECHO_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    command: ['node', '-e', SIDE_SCRIPT],
    ports: [{ containerPort: 9090 }, { name: 'metrics', containerPort: 9100 }],
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels(name) },
      template: { metadata: { labels: labels(name) }, spec: { containers: withSide ? [app, side] : [app] } },
    },
  };
}

const SIDE_SCRIPT = `
const os = require('node:os');
for (const port of [9090, 9100]) {
  require('node:http').createServer((q, s) => s.end(JSON.stringify({ host: os.hostname(), port }))).listen(port);
}`;

function service(name: string, ports: object[]): object {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: labels(name), ports } };
}

/**
 * A Deployment that Pod Security's restricted level admits, in `strictNs`, with a Service by
 * port name (`strict`) and one by number (`strict-numeric`).
 */
const strictObjects: object[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: strictNs, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'strict', namespace: strictNs },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels('strict') },
      template: {
        metadata: { labels: labels('strict') },
        spec: {
          securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          automountServiceAccountToken: false,
          containers: [
            {
              name: 'app',
              image: ECHO_IMAGE,
              imagePullPolicy: 'IfNotPresent',
              ports: [{ name: 'http', containerPort: 8080 }],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'strict', namespace: strictNs }, spec: { selector: labels('strict'), ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
];

/** A long-running pod from which requests are sent into the cluster. */
const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: {
    containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }],
    terminationGracePeriodSeconds: 1,
  },
};

/** GETs a URL from inside the cluster and returns the `host` the answer names. */
async function hostAnswering(url: string): Promise<string> {
  const script = `fetch(process.argv[1], { signal: AbortSignal.timeout(5000) })
    .then((r) => r.json()).then((j) => console.log(j.host))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  const out = await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, url], { timeoutMs: 20_000 });
  return out.trim();
}

/** Waits until `url`, asked from inside the cluster, is answered by a host `wanted` accepts; returns it. */
async function answeredBy(url: string, wanted: (host: string) => boolean, what: string, timeoutMs: number): Promise<string> {
  return eventually(
    async () => {
      const host = await hostAnswering(url);
      if (!wanted(host)) throw new Error(`answered by ${host}`);
      return host;
    },
    { timeoutMs, intervalMs: 500, what },
  );
}

/** A server on the workstation that says who it is. */
async function localServer(t: Test, address = '127.0.0.1'): Promise<{ port: number; host: string }> {
  const server: Server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ host: name }));
  });
  await new Promise<void>((ok) => server.listen(0, address, ok));
  const port = (server.address() as AddressInfo).port;
  const name = `workstation-${port}`;
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  return { port, host: name };
}

async function podsOf(app: string): Promise<Pod[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`]);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined);
}

function containerNames(pod: Pod): string[] {
  return (pod.spec?.containers ?? []).map((c) => c.name);
}

async function rolledOut(app: string): Promise<void> {
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=120s'], { timeoutMs: 130_000 });
}

/** The pids of this test's daemon: processes whose environment names our runtime folder. */
function daemonPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmd.includes('daemon-foreground') && env.split('\0').includes(`XDG_RUNTIME_DIR=${cli.runtimeDir}`)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

// Narrow type for the `list --output json` rows this suite reads.
interface ListedWorkload {
  name: string;
  kind: string;
  /** none | configured | installed */
  agent: string;
  intercepts?: Array<{ spec?: { name?: string }; clientName?: string }>;
}
async function listed(name: string, tp: TelepresenceCli = cli): Promise<ListedWorkload | undefined> {
  const out = await tp.json<{ workloads?: ListedWorkload[] } | ListedWorkload[]>(['list']);
  const rows = Array.isArray(out) ? out : (out.workloads ?? []);
  return rows.find((w) => w.name === name);
}

/** Everything of a Deployment's spec except the one annotation a rollout may set. */
function specWithoutRolloutAnnotation(d: Deployment): unknown {
  const copy = JSON.parse(JSON.stringify(d.spec)) as { template: { metadata: { annotations?: Record<string, string> } } };
  const annotations = copy.template.metadata.annotations ?? {};
  delete annotations['telepresence.io/restarted-at'];
  if (Object.keys(annotations).length === 0) delete copy.template.metadata.annotations;
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down


t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  // A failed earlier run may have left the manager installed; this suite starts without one.
  await kube.kubectl(['delete', 'mutatingwebhookconfigurations', '-l', MANAGED_BY, '--ignore-not-found']);
  await kube.kubectl(['delete', 'namespace', MANAGER_NS, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  await kube.apply([
    namespace(ns),
    deployment('web', false),
    service('web', [{ name: 'http', port: 80, targetPort: 'http' }]),
    deployment('multi', true),
    service('multi', [
      { name: 'http', port: 80, targetPort: 'http' },
      { name: 'alt', port: 9090, targetPort: 9090 },
      { name: 'metrics', port: 9100, targetPort: 'metrics' },
    ]),
    deployment('lonely', false),
    // Two Services that reach the same container port by number.
    deployment('pair', false),
    service('pair', [{ name: 'http', port: 80, targetPort: 8080 }]),
    { ...(service('pair', [{ port: 8000, targetPort: 8080 }]) as { spec: object }), metadata: { name: 'pair-lb', namespace: ns } },
    clientPod,
  ]);
  await kube.apply(strictObjects);
  for (const app of ['web', 'multi', 'lonely', 'pair']) await rolledOut(app);
  await kube.kubectl(['-n', strictNs, 'rollout', 'status', 'deployment/strict', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
});

t.teardown(async () => {
  await cli.dispose();
  // Whatever the cases got to, leave the cluster as we found it.
  const installed = await processRunner.run('kubectl', ['--kubeconfig', cluster.kubeconfig, 'get', 'namespace', MANAGER_NS]);
  if (installed.exitCode === 0) {
    await kube.kubectl(['delete', 'mutatingwebhookconfigurations', '-l', MANAGED_BY, '--ignore-not-found']);
    await kube.kubectl(['delete', 'namespace', MANAGER_NS, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
    await kube.kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', MANAGED_BY, '--ignore-not-found']);
  }
  await kube.kubectl(['delete', 'namespace', ns, strictNs, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

// ---------------------------------------------------------------------------------------------
// No manager installed

/** How the connections of this CLI's daemon came in: over direct tunnels or relayed by the manager. */
async function interceptedConnections(c: TelepresenceCli): Promise<{ direct: number; relayed: number }> {
  const status = await c.json<{ connection?: { interceptedConnections?: { direct: number; relayed: number } } }>(['status']);
  return status.connection?.interceptedConnections ?? { direct: -1, relayed: -1 };
}

t.test('connect without the traffic-manager names the fix', async (t) => {
  const r = await cli.run(['connect']);
  t.not(r.exitCode, 0, 'fails');
  t.match(r.stderr, /not installed/i, 'says the manager is not installed');
  t.match(r.stderr, /kubectl telepresence install/, 'says how to install it');
});

// ---------------------------------------------------------------------------------------------
// Installed and connected

t.test('install brings up the traffic-manager and the agent-injector', async (t) => {
  await cli.ok(['install'], 300_000);
  const deployments = await kube.json<List<Deployment>>(['-n', MANAGER_NS, 'get', 'deployments']);
  const available = deployments.items.filter((d) => (d.status?.availableReplicas ?? 0) >= 1).map((d) => d.metadata.name);
  t.same(available.sort(), ['agent-injector', 'traffic-manager'], 'both deployments are available');
  const hooks = await kube.json<List<{ webhooks: Array<{ clientConfig: { caBundle?: string }; failurePolicy: string }> }>>([
    'get', 'mutatingwebhookconfigurations', '-l', MANAGED_BY,
  ]);
  t.equal(hooks.items.length, 1, 'one webhook configuration');
  t.ok(hooks.items[0]?.webhooks[0]?.clientConfig.caBundle, 'its caBundle is set');
  t.equal(hooks.items[0]?.webhooks[0]?.failurePolicy, 'Ignore', 'it never blocks pod creation');
});

t.test('install again changes nothing and succeeds', async (t) => {
  await cli.ok(['install'], 300_000);
  t.pass('second install succeeded');
});

t.test('connect, then status reports the session and the versions', async (t) => {
  await cli.ok(['connect']);
  const status = await cli.json<Record<string, unknown>>(['status']);
  t.match(JSON.stringify(status), /CONNECTED|connected/, 'connected');
  const version = await cli.ok(['version']);
  const client = /client.*?(\d+\.\d+\.\d+)/i.exec(version)?.[1];
  const manager = /manager.*?(\d+\.\d+\.\d+)/i.exec(version)?.[1];
  t.ok(client, `client version shown:\n${version}`);
  t.equal(manager, client, 'the manager runs the same version');
});

t.test('list shows the workloads and that none has an agent yet', async (t) => {
  const web = await listed('web');
  t.equal(web?.kind, 'Deployment');
  t.equal(web?.agent, 'none', 'no agent before the first intercept');
});

t.test('bad input: an unknown workload', async (t) => {
  const r = await cli.run(['intercept', 'no-such-app', '--port', '8080']);
  t.equal(r.exitCode, 2, 'a user error');
  t.match(r.stderr, /no-such-app/, 'names the workload');
  t.match(r.stderr, /kubectl telepresence list|--namespace/, 'says how to find the right one');
});

t.test('bad input: a workload without a Service', async (t) => {
  const r = await cli.run(['intercept', 'lonely', '--port', '8080']);
  t.equal(r.exitCode, 2, 'a user error');
  t.match(r.stderr, /lonely/, 'names the workload');
  t.match(r.stderr, /no service/i, 'says no Service selects it');
  t.same(await podsOf('lonely').then((pods) => pods.flatMap(containerNames)), ['app'], 'the workload was left alone');
});

// ---------------------------------------------------------------------------------------------
// Intercepted

let firstPods: string[] = [];

t.test('first intercept of a never-intercepted Deployment', async (t) => {
  const local = await localServer(t);
  const before = await kube.json<Deployment>(['-n', ns, 'get', 'deployment', 'web']);
  t.equal(await hostAnswering(`http://web.${ns}/`).then((h) => h.startsWith('web-')), true, 'the app answers before');

  const out = await cli.ok(['intercept', 'web', '--port', `${local.port}:http`], 300_000);
  // Asked at once: the intercept returns only when the Service routes to the new pod alone, so
  // none of these may reach the old pod, which may still be on its way out.
  const first = await hostsAnswering(kube, ns, 'client', `http://web.${ns}/`, 10);
  t.strictSame(first, Array(10).fill(local.host), 'the requests sent as soon as intercept returns are all answered by the workstation');
  t.match(out, /web/, `reports the intercept:\n${out}`);
  t.match(out, /Traffic\s+: direct from the agent's pod/, 'and that its connections come straight from the pod');

  const cm = await kube.json<{ data?: Record<string, string> }>(['-n', ns, 'get', 'configmap', 'telepresence-agents']);
  t.ok(cm.data?.['web'], 'the ConfigMap has an entry for the workload');
  const pods = await podsOf('web');
  t.ok(pods.length > 0 && pods.every((p) => containerNames(p).includes('traffic-agent')), 'its pods carry the agent');
  firstPods = pods.map((p) => p.metadata.name);
  const after = await kube.json<Deployment>(['-n', ns, 'get', 'deployment', 'web']);
  t.same(specWithoutRolloutAnnotation(after), specWithoutRolloutAnnotation(before), 'the spec differs only by the rollout annotation');
  t.ok(after.spec?.template?.metadata?.annotations?.['telepresence.io/restarted-at'], 'the rollout annotation is set');

  await answeredBy(`http://web.${ns}/`, (host) => host === local.host, 'a request from a pod answered by the workstation', 20_000);
  t.pass('a request sent from another pod is answered by the process on the workstation');
  const tunnels = await interceptedConnections(cli);
  t.ok(tunnels.direct > 0, `the connections came over direct tunnels to the agent's pod (${JSON.stringify(tunnels)})`);

  await cli.ok(['leave', `web-${ns}`]);
});

t.test('leave: the app answers again', async (t) => {
  const host = await answeredBy(`http://web.${ns}/`, (h) => h.startsWith('web-'), 'the app answering after leave', 15_000);
  t.match(host, /^web-/, 'answered by the app');
});

t.test('a second intercept of the same workload needs no rollout', async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'web', '--port', `${local.port}:http`], 120_000);
  t.same((await podsOf('web')).map((p) => p.metadata.name), firstPods, 'the same pods');
  t.equal(await hostAnswering(`http://web.${ns}/`), local.host, 'answered on the workstation');

  const again = await cli.run(['intercept', 'multi', '--port', `${local.port}:http`]);
  t.equal(again.exitCode, 2, 'a second intercept to the same local port is a user error');
  t.match(again.stderr, new RegExp(`${local.port}`), 'naming the port');

  await cli.ok(['leave', `web-${ns}`]);
});

/** Whether this host has an IPv6 loopback to listen on. */
const hasIpv6Loopback = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

t.test('a port where nothing listens is noted; a process that listens on ::1 alone gets the traffic', async (t) => {
  const idle = createServer();
  await new Promise<void>((ok) => idle.listen(0, '127.0.0.1', ok));
  const nobody = (idle.address() as AddressInfo).port;
  await new Promise<void>((ok) => idle.close(() => ok()));
  const noted = await cli.run(['intercept', 'web', '--port', `${nobody}:http`, '--mount=false']);
  t.equal(noted.exitCode, 0, 'the intercept is made all the same');
  t.match(noted.stderr, new RegExp(`note: nothing listens on localhost:${nobody} `), 'with a note that nothing listens there yet');
  await cli.ok(['leave', `web-${ns}`]);

  if (!hasIpv6Loopback) {
    t.comment('this host has no IPv6 loopback: the ::1 case cannot be tried here');
    return;
  }
  const v6 = await localServer(t, '::1');
  await cli.ok(['intercept', 'web', '--port', `${v6.port}:http`, '--mount=false'], 120_000);
  t.equal(await hostAnswering(`http://web.${ns}/`), v6.host, 'answered by the process on [::1]');
  await cli.ok(['leave', `web-${ns}`]);
});

t.test('two containers and three service ports: without --port naming one, the choices', async (t) => {
  const r = await cli.run(['intercept', 'multi', '--port', '8080']);
  t.equal(r.exitCode, 2, 'a user error');
  for (const choice of ['http', 'alt', 'metrics']) t.match(r.stderr, new RegExp(`\\b${choice}\\b`), `lists ${choice}`);
});

t.test('each port of the two containers can be intercepted', async (t) => {
  for (const [port, url] of [
    ['http', `http://multi.${ns}/`],
    ['alt', `http://multi.${ns}:9090/`],
    ['metrics', `http://multi.${ns}:9100/`],
  ] as const) {
    const local = await localServer(t);
    await cli.ok(['intercept', 'multi', '--port', `${local.port}:${port}`, '--name', `multi-${port}`], 300_000);
    await answeredBy(url, (h) => h === local.host, `${url} answered by the workstation`, 20_000);
    t.pass(`${port}: intercepted`);
    await cli.ok(['leave', `multi-${port}`]);
    const back = await answeredBy(url, (h) => h.startsWith('multi-'), `${url} answered by the app again`, 15_000);
    t.match(back, /^multi-/, `${port}: the app answers again after leave`);
  }
});

t.test('two Services to the same numeric port: an intercept through the second takes what both send', async (t) => {
  const local = await localServer(t);
  const made = await cli.ok(['intercept', 'pair', '--service', 'pair-lb', '--port', `${local.port}`, '--name', 'pair-lb'], 300_000);
  t.match(made, /Also takes {5}: pair:http \(the same container port\)/, 'it says it takes the other Service port too');
  for (const url of [`http://pair-lb.${ns}:8000/`, `http://pair.${ns}/`]) {
    await answeredBy(url, (h) => h === local.host, `${url} answered by the workstation`, 20_000);
    t.pass(`${url}: answered by the workstation`);
  }
  await cli.ok(['leave', 'pair-lb']);
  const back = await answeredBy(`http://pair-lb.${ns}:8000/`, (h) => h.startsWith('pair-'), 'the app answering after leave', 15_000);
  t.match(back, /^pair-/, 'the app answers again after leave');
});

t.test("a namespace that enforces Pod Security's restricted level admits the agent; a numeric port is refused at once", async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'strict', '--namespace', strictNs, '--port', `${local.port}:http`, '--mount=false'], 300_000);
  const pods = (await kube.json<List<Pod>>(['-n', strictNs, 'get', 'pods', '-l', 'app=strict'])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  t.ok(pods.length > 0 && pods.every((p) => containerNames(p).includes('traffic-agent')), 'the pods carry the agent');
  await answeredBy(`http://strict.${strictNs}/`, (h) => h === local.host, 'the restricted workload answered by the workstation', 20_000);
  t.pass('answered by the workstation');
  await cli.ok(['leave', `strict-${strictNs}`]);

  await kube.apply([
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'strict-numeric', namespace: strictNs }, spec: { selector: labels('strict'), ports: [{ port: 81, targetPort: 8080 }] } },
  ]);
  const entry = async (): Promise<string | undefined> =>
    (await kube.json<{ data?: Record<string, string> }>(['-n', strictNs, 'get', 'configmap', 'telepresence-agents'])).data?.['strict'];
  const entryBefore = await entry();
  const podsBefore = pods.map((p) => p.metadata.name).sort();
  const refused = await cli.run(['intercept', 'strict', '--namespace', strictNs, '--service', 'strict', '--port', `${local.port}:http`, '--mount=false']);
  t.equal(refused.exitCode, 3, 'a configuration error');
  t.match(refused.stderr, /enforces Pod Security "restricted", which refuses the NET_ADMIN init container .*strict-numeric:81 -> app:8080/, 'naming the level and the port');
  t.match(refused.stderr, /hint: name the container port and use that name as the targetPort of the Service/, 'and the way out');
  t.equal(await entry(), entryBefore, 'the agent configuration is left as it was');
  const podsAfter = (await kube.json<List<Pod>>(['-n', strictNs, 'get', 'pods', '-l', 'app=strict'])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  t.strictSame(podsAfter.map((p) => p.metadata.name).sort(), podsBefore, 'and the pods too: no rollout was started');
});

t.test('a client killed with SIGKILL loses its intercept within 15 s', async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'web', '--port', `${local.port}:http`], 120_000);
  t.equal(await hostAnswering(`http://web.${ns}/`), local.host, 'intercepted');
  const pids = daemonPids();
  t.ok(pids.length > 0, 'found the daemon');
  const killedAt = Date.now();
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await answeredBy(`http://web.${ns}/`, (h) => h.startsWith('web-'), 'the app answering after the client was killed', 25_000);
  const seconds = (Date.now() - killedAt) / 1000;
  t.ok(seconds <= 15, `the app answered again ${seconds.toFixed(1)} s after the kill`);
  const web = await listed('web');
  t.same(web?.intercepts ?? [], [], 'the intercept is gone from the manager');
});

t.test('a ServiceAccount without rights to modify workloads can intercept', async (t) => {
  const kubeconfig = join(cli.runtimeDir, 'restricted.kubeconfig');
  const { as } = await createRestrictedUser(kube, ns, 'tp-restricted-dev', kubeconfig);
  for (const verb of ['patch', 'update']) {
    const can = await processRunner.run('kubectl', ['--kubeconfig', cluster.kubeconfig, 'auth', 'can-i', verb, 'deployments', '-n', ns, '--as', as]);
    t.equal(can.stdout.trim(), 'no', `the account cannot ${verb} deployments`);
  }

  const dev = createTelepresenceCli({ repoRoot, kubeconfig, namespace: ns });
  t.teardown(() => dev.dispose());
  const local = await localServer(t);
  const out = await dev.ok(['intercept', 'web', '--port', `${local.port}:http`, '--name', 'restricted'], 120_000);
  t.match(out, /Traffic\s+: relayed by the traffic-manager \(.*pods\/portforward/, `says why its connections are relayed:\n${out}`);
  await answeredBy(`http://web.${ns}/`, (h) => h === local.host, 'the restricted user intercepting', 20_000);
  t.pass('the restricted user intercepted the workload');
  // No pods/portforward in the workload's namespace: no direct tunnel, the manager relays.
  const tunnels = await interceptedConnections(dev);
  t.ok(tunnels.relayed > 0 && tunnels.direct === 0, `relayed by the traffic-manager (${JSON.stringify(tunnels)})`);
  await dev.ok(['leave', 'restricted']);
});

// ---------------------------------------------------------------------------------------------
// Uninstalled

t.test('uninstall --agent removes the sidecar through a rollout', async (t) => {
  await cli.ok(['uninstall', '--agent', 'web'], 300_000);
  await eventually(async () => {
    const pods = await podsOf('web');
    if (pods.length === 0 || pods.some((p) => containerNames(p).includes('traffic-agent'))) throw new Error('agent still there');
  }, { timeoutMs: 120_000, intervalMs: 1000, what: 'web pods without the agent' });
  await rolledOut('web');
  const cm = await kube.json<{ data?: Record<string, string> }>(['-n', ns, 'get', 'configmap', 'telepresence-agents']);
  t.notOk(cm.data?.['web'], 'its ConfigMap entry is gone');
  // kube-proxy takes up the new pods a moment after the rollout completes.
  const host = await answeredBy(`http://web.${ns}/`, (h) => h.startsWith('web-'), 'the app answering after the agent is removed', 20_000);
  t.match(host, /^web-/, 'the app answers');
});

t.test('uninstall --everything leaves no object of ours in the cluster', async (t) => {
  await cli.ok(['uninstall', '--everything'], 300_000);
  const ours = await kube.kubectl(['get', 'all,configmaps,secrets,serviceaccounts,roles,rolebindings', '-A', '-l', MANAGED_BY, '-o', 'name']);
  t.equal(ours.trim(), '', 'no namespaced object labelled as ours');
  const clusterScoped = await kube.kubectl(['get', 'clusterroles,clusterrolebindings,mutatingwebhookconfigurations', '-l', MANAGED_BY, '-o', 'name']);
  t.equal(clusterScoped.trim(), '', 'no cluster-scoped object labelled as ours');
  const agents = await kube.kubectl(['get', 'configmaps', '-A', '--field-selector', 'metadata.name=telepresence-agents', '-o', 'name']);
  t.equal(agents.trim(), '', 'no telepresence-agents ConfigMap');
  const managerNs = await processRunner.run('kubectl', ['--kubeconfig', cluster.kubeconfig, 'get', 'namespace', MANAGER_NS]);
  t.not(managerNs.exitCode, 0, `namespace ${MANAGER_NS} is gone`);
  const pods = await podsOf('multi');
  t.ok(pods.every((p) => !containerNames(p).includes('traffic-agent')), 'no pod carries an agent');
});
