/**
 * Faults in the prepare of an intercept, on the real cluster, as a user meets them with
 * `kubectl telepresence intercept`:
 *   - a workload scaled to 0 replicas: refused at once, naming the workload and the fix, and
 *     nothing in the cluster changes;
 *   - the agent-injector scaled to 0: refused within seconds, naming the injector, before the
 *     workload is restarted at all;
 *   - the injector up but the API server's calls to it failing (a webhook caBundle that does not
 *     match the injector's certificate; failurePolicy Ignore admits the pods without the agent):
 *     refused within seconds of the pods being created, naming the injector, after exactly one
 *     restart, with the ConfigMap entry removed again.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it); the
 * injector and its webhook configuration are put back by teardowns that always run. One
 * namespace of its own, deleted at the end. Run it under `flock /tmp/tp-cluster.lock`: it takes
 * the injector away from every other client while it runs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { generateServingCert } from '../src/certs.js';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { Deployment, EndpointSlice, List, Pod } from '../src/k8s-objects.js';
import { readyEndpointAddresses } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { clusterIpService, echoDeployment, namespace } from '../src/manifests.js';
import type { RunResult } from '../src/process-runner.js';
import { createTelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-fault-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const INJECTOR = 'agent-injector';
const WEBHOOK_CONFIG = `agent-injector-webhook-${MANAGER_NS}`;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

/** The workload the injector cases intercept (one replica) and the one scaled to zero. */
const VICTIM = 'victim';
const IDLE = 'idle';
/**
 * The bound the manager must answer within when the injector is down: seconds, not the prepare's
 * two-minute timeout. It covers the CLI's start and the restart of the workload.
 */
const FAULT_ANSWER_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Helpers

interface ReplicaSet {
  readonly metadata: { readonly name: string; readonly uid: string };
}

interface ConfigMap {
  readonly metadata: { readonly name: string; readonly resourceVersion?: string };
  readonly data?: Readonly<Record<string, string>>;
}

interface WebhookConfiguration {
  readonly webhooks: ReadonlyArray<{ readonly clientConfig: { readonly caBundle?: string } }>;
}

/** The error a command printed with `--output json` (the CLI writes it to stderr). */
interface JsonError {
  readonly error?: { readonly category?: string; readonly code?: string; readonly message?: string; readonly hint?: string };
}

async function replicaSetsOf(app: string): Promise<string[]> {
  const list = await kube.json<List<ReplicaSet>>(['-n', ns, 'get', 'replicasets', '-l', `app=${app}`]);
  return list.items.map((rs) => rs.metadata.uid).sort();
}

async function deploymentOf(app: string): Promise<Deployment & { metadata: { generation?: number; annotations?: Record<string, string> } }> {
  return kube.json(['-n', ns, 'get', 'deployment', app]);
}

async function agentsMap(): Promise<Readonly<Record<string, string>>> {
  const list = await kube.json<List<ConfigMap>>(['-n', ns, 'get', 'configmaps', '--field-selector', 'metadata.name=telepresence-agents']);
  return list.items[0]?.data ?? {};
}

/** What an intercept must not change in the namespace: the Deployment as written and every ConfigMap. */
async function namespaceState(app: string): Promise<unknown> {
  const d = await deploymentOf(app);
  const maps = await kube.json<List<ConfigMap>>(['-n', ns, 'get', 'configmaps']);
  return {
    deployment: { generation: d.metadata.generation, annotations: d.metadata.annotations ?? {}, spec: d.spec },
    configMaps: maps.items.map((m) => ({ name: m.metadata.name, resourceVersion: m.metadata.resourceVersion, data: m.data ?? {} })),
  };
}

/** Runs `intercept` and measures how long it took to answer. */
async function timedIntercept(args: readonly string[]): Promise<{ r: RunResult; ms: number }> {
  const started = Date.now();
  const r = await cli.run(['intercept', ...args], 200_000);
  return { r, ms: Date.now() - started };
}

function jsonError(r: RunResult): NonNullable<JsonError['error']> {
  const line = r.stderr.trim().split('\n').at(-1) ?? '';
  try {
    return (JSON.parse(line) as JsonError).error ?? {};
  } catch {
    return { message: `(no JSON error on stderr) ${r.stderr}` };
  }
}

async function injectorReadyEndpoints(): Promise<number> {
  const slices = await kube.json<List<EndpointSlice>>(['-n', MANAGER_NS, 'get', 'endpointslices', '-l', `kubernetes.io/service-name=${INJECTOR}`]);
  return readyEndpointAddresses(slices.items).length;
}

async function scaleInjector(replicas: number): Promise<void> {
  await kube.kubectl(['-n', MANAGER_NS, 'scale', `deployment/${INJECTOR}`, `--replicas=${replicas}`]);
  if (replicas > 0) {
    await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', `deployment/${INJECTOR}`, '--timeout=120s'], { timeoutMs: 130_000 });
  }
  await eventually(
    async () => {
      const ready = await injectorReadyEndpoints();
      if ((ready > 0) !== (replicas > 0)) throw new Error(`${ready} ready endpoint(s)`);
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `the ${INJECTOR} Service with ${replicas > 0 ? 'a ready endpoint' : 'no ready endpoint'}` },
  );
}

/**
 * Fails `t` as soon as the workload gets another ReplicaSet than `expected`, polling for
 * `forMs`: the manager reacts to the entry's removal within a second, so a second restart
 * would show well within that.
 */
async function noFurtherRollout(t: Test, app: string, expected: readonly string[], forMs: number): Promise<void> {
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    const now = await replicaSetsOf(app);
    if (JSON.stringify(now) !== JSON.stringify(expected)) {
      t.fail(`${app} was rolled out again: ${now.length} ReplicaSets, ${expected.length} expected`);
      return;
    }
  }
  t.pass(`no further rollout of ${app} within ${forMs / 1000} s`);
}

async function localServer(t: Test): Promise<number> {
  const server: Server = createServer((_req, res) => res.end('workstation'));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  return (server.address() as AddressInfo).port;
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

t.before(async () => {
  // No case starts a traffic-agent (each refuses, or its pods come without one): its image is not needed.
  await prepareSuiteImages(repoRoot, cluster.kubeconfig, ['echo', 'traffic-manager', 'agent-injector']);
  await kube.apply([
    namespace(ns),
    echoDeployment(ns, VICTIM, 1),
    clusterIpService(ns, VICTIM, 80),
    echoDeployment(ns, IDLE, 0),
    clusterIpService(ns, IDLE, 80),
  ]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${VICTIM}`, '--timeout=120s'], { timeoutMs: 130_000 });
  await cli.ok(['install'], 300_000);
  // An installed manager keeps the image it started with, whatever was loaded since: restart it,
  // so that the code under test is what answers.
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', 'deployment/traffic-manager']);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=120s'], { timeoutMs: 130_000 });
  await scaleInjector(1);
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.dispose();
  // Whatever happened above, leave the injector running for whoever comes next.
  await kube.kubectl(['-n', MANAGER_NS, 'scale', `deployment/${INJECTOR}`, '--replicas=1']).catch(() => undefined);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

// ---------------------------------------------------------------------------------------------
// A workload with no pod

t.test('a Deployment scaled to 0: refused at once, naming it and the fix, and nothing changes', async (t) => {
  const local = await localServer(t);
  const before = await namespaceState(IDLE);

  const { r, ms } = await timedIntercept([IDLE, '--port', `${local}:http`]);
  t.equal(r.exitCode, 2, `a user error (exit 2):\n${r.stderr}`);
  t.ok(ms < FAULT_ANSWER_MS, `answered in ${ms} ms, under ${FAULT_ANSWER_MS / 1000} s`);
  t.match(r.stderr, new RegExp(`deployment/${IDLE}`), 'names the workload');
  t.match(r.stderr, /0 replicas/, 'says why there is nothing to intercept');
  t.match(r.stderr, new RegExp(`kubectl scale deployment/${IDLE} -n ${ns} --replicas=1`), 'and how to fix it');

  const { r: rj } = await timedIntercept([IDLE, '--port', `${local}:http`, '--output', 'json']);
  const err = jsonError(rj);
  t.equal(err.code, 'no-replicas', `--output json carries the code: ${JSON.stringify(err)}`);
  t.equal(err.category, 'user');
  t.match(err.hint, /--replicas=1/, 'and the hint');

  t.same(await namespaceState(IDLE), before, 'the Deployment and the ConfigMaps are as they were');
});

// ---------------------------------------------------------------------------------------------
// The agent-injector down

t.test('the agent-injector scaled to 0: refused within seconds, naming it, before any restart', async (t) => {
  t.teardown(() => scaleInjector(1));
  const local = await localServer(t);
  const replicaSets = await replicaSetsOf(VICTIM);
  const generation = (await deploymentOf(VICTIM)).metadata.generation;
  await scaleInjector(0);

  const { r, ms } = await timedIntercept([VICTIM, '--port', `${local}:http`]);
  t.equal(r.exitCode, 4, `a cluster error (exit 4):\n${r.stderr}`);
  t.ok(ms < FAULT_ANSWER_MS, `answered in ${ms} ms, under ${FAULT_ANSWER_MS / 1000} s`);
  t.match(r.stderr, /agent-injector/, 'names the injector');
  t.match(r.stderr, /no ready endpoint/, 'says what is wrong with it');
  t.match(r.stderr, /0 replicas/, 'and why: it was scaled to 0');
  t.match(r.stderr, new RegExp(`kubectl -n ${MANAGER_NS} scale deployment/${INJECTOR} --replicas=1`), 'and the fix');

  t.same(await replicaSetsOf(VICTIM), replicaSets, 'the workload was not restarted: no new ReplicaSet');
  t.equal((await deploymentOf(VICTIM)).metadata.generation, generation, 'nor its template changed');
  t.notOk(VICTIM in (await agentsMap()), 'no ConfigMap entry is left');
});

t.test('the injector failing open: refused within seconds of the restart, one restart only, entry removed', async (t) => {
  // A caBundle of another CA: the API server cannot verify the injector, and failurePolicy
  // Ignore admits the pods unchanged. The injector itself looks healthy.
  const dir = mkdtempSync(join(tmpdir(), 'tp-fault-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const hook = await kube.json<WebhookConfiguration>(['get', 'mutatingwebhookconfiguration', WEBHOOK_CONFIG]);
  const original = hook.webhooks[0]?.clientConfig.caBundle ?? '';
  t.ok(original !== '', 'the installed webhook has a caBundle');
  const other = await generateServingCert({ dir, hosts: [`${INJECTOR}.${MANAGER_NS}.svc`] });
  const setCaBundle = (caBundle: string): Promise<string> =>
    kube.kubectl(['patch', 'mutatingwebhookconfiguration', WEBHOOK_CONFIG, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }])]);
  t.teardown(() => setCaBundle(original));
  await setCaBundle(Buffer.from(other.caCertPem, 'utf8').toString('base64'));

  const local = await localServer(t);
  const replicaSets = await replicaSetsOf(VICTIM);
  const generation = (await deploymentOf(VICTIM)).metadata.generation ?? 0;

  const { r, ms } = await timedIntercept([VICTIM, '--port', `${local}:http`, '--output', 'json']);
  const err = jsonError(r);
  t.equal(r.exitCode, 4, `a cluster error (exit 4):\n${r.stderr}`);
  t.ok(ms < FAULT_ANSWER_MS, `answered in ${ms} ms, under ${FAULT_ANSWER_MS / 1000} s`);
  t.equal(err.code, 'agent-not-injected', `--output json carries the code: ${JSON.stringify(err)}`);
  t.match(err.message, /created without the traffic-agent/, 'says what happened');
  t.match(err.message, /agent-injector/, 'names the injector');
  t.match(err.message, /failurePolicy Ignore/, 'and that the webhook call failed open');
  t.match(err.hint, /kubectl/, 'the hint says what to look at');

  const after = await replicaSetsOf(VICTIM);
  t.equal(after.length, replicaSets.length + 1, 'the workload was restarted once: one new ReplicaSet');
  t.equal((await deploymentOf(VICTIM)).metadata.generation, generation + 1, 'its template changed once');
  t.notOk(VICTIM in (await agentsMap()), 'the ConfigMap entry is removed');
  await noFurtherRollout(t, VICTIM, after, 5_000);
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${VICTIM}`, '--timeout=120s'], { timeoutMs: 130_000 });
  const pods = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${VICTIM}`]);
  const containers = pods.items.filter((p) => p.metadata.deletionTimestamp === undefined).flatMap((p) => (p.spec?.containers ?? []).map((c) => c.name));
  t.notOk(containers.includes('traffic-agent'), `the pods run without an agent, as the entry says: ${containers.join(', ')}`);
});
