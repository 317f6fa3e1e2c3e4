/**
 * Proves the test cluster is a real Kubernetes before any Telepresence suite relies on it: a
 * Ready node, scheduling and readiness, Service DNS and load balancing, port-forward, exec, and
 * the API server calling a TLS admission webhook that runs on this workstation (what the agent
 * injector's tests will depend on).
 *
 * Cluster state: one namespace per run, `tp-smoke-<random>`, deleted in teardown. Needs a cluster
 * from `npm run cluster:up`; builds and loads tp-local/echo:1 itself.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateServingCert } from '../src/certs.js';
import { findRepoRoot, prepareImage } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { httpGet } from '../src/http-client.js';
import {
  formatConditions,
  isNodeReady,
  isPodReady,
  readyEndpointAddresses,
  type Deployment,
  type EndpointSlice,
  type List,
  type Node,
  type Pod,
  type Service,
} from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import {
  ECHO_CONTAINER_PORT,
  ECHO_IMAGE,
  clusterIpService,
  echoDeployment,
  echoPod,
  mutatingWebhookConfiguration,
  namespace,
  nodeScriptPod,
} from '../src/manifests.js';
import { PROBE_SCRIPT, parseProbeResult, probeEnv } from '../src/probe-script.js';
import { addLabelPatch, startWebhookServer, type AdmissionRequest, type WebhookServer } from '../src/webhook-server.js';

// The whole file: a cold echo image build can take minutes; a warm run takes well under one.
t.setTimeout(15 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const run = randomBytes(3).toString('hex');
const ns = `tp-smoke-${run}`;
const ECHO = 'echo';
const ECHO_REPLICAS = 2;
const SERVICE_PORT = 80;
const webhookConfigName = `tp-smoke-${run}`;

// Readiness waits: images are already on the node, so this is scheduling + container start +
// the first readiness probe, with headroom for a loaded 2-core machine.
const READY_TIMEOUT_MS = 120_000;
const POLL_MS = 500;

async function deleteWebhookConfig(): Promise<void> {
  await kube.kubectl(['delete', 'mutatingwebhookconfiguration', webhookConfigName, '--ignore-not-found']);
}

/**
 * Runs one clean-up step and reports, rather than throws, its failure: tap turns a rejected
 * root teardown into an unreadable internal assertion crash, and one failed step must not skip
 * the next.
 */
async function cleanUp(what: string, step: () => Promise<unknown>): Promise<void> {
  try {
    await step();
  } catch (err) {
    process.exitCode = 1;
    console.error(`# teardown: could not delete ${what}; delete it by hand. ${err instanceof Error ? err.message : String(err)}`);
  }
}

t.before(async () => {
  await prepareImage({ repoRoot: findRepoRoot(), imageDir: 'echo', image: ECHO_IMAGE, kubeconfig: cluster.kubeconfig });
  await kube.apply([namespace(ns, { 'tp-smoke/run': run })]);
  await kube.apply([echoDeployment(ns, ECHO, ECHO_REPLICAS), clusterIpService(ns, ECHO, SERVICE_PORT)]);
});

t.teardown(async () => {
  // The webhook test deletes its configuration itself; this is the second line of defence. It
  // runs first so that nothing in the cluster keeps pointing at a server that is about to go away.
  await cleanUp(`mutatingwebhookconfiguration/${webhookConfigName}`, deleteWebhookConfig);
  // Waiting for the namespace to be gone keeps runs from piling up terminating namespaces.
  await cleanUp(`namespace/${ns}`, () =>
    kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 }),
  );
});

interface EchoReady {
  readonly deployment: Deployment;
  readonly pods: readonly Pod[];
}

let echoReadyPromise: Promise<EchoReady> | undefined;
/** Waits (once, shared by the tests that need the echo pods) for the Deployment to be available. */
function echoReady(): Promise<EchoReady> {
  echoReadyPromise ??= eventually(
    async () => {
      const deployment = await kube.json<Deployment>(['get', 'deployment', ECHO, '-n', ns]);
      const s = deployment.status ?? {};
      if ((s.availableReplicas ?? 0) < ECHO_REPLICAS) {
        throw new Error(
          `deployment/${ECHO}: ${s.availableReplicas ?? 0}/${ECHO_REPLICAS} available, ` +
            `${s.readyReplicas ?? 0} ready; ${formatConditions(s.conditions)}`,
        );
      }
      const pods = (await kube.json<List<Pod>>(['get', 'pods', '-n', ns, '-l', `app=${ECHO}`])).items;
      const ready = pods.filter(isPodReady);
      if (ready.length !== ECHO_REPLICAS) {
        throw new Error(`${ready.length} of ${pods.length} app=${ECHO} pods ready, want ${ECHO_REPLICAS}`);
      }
      return { deployment, pods: ready };
    },
    {
      what: `deployment/${ECHO} with ${ECHO_REPLICAS} available replicas`,
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: POLL_MS,
      diagnose: () => kube.diagnostics(ns, [`deployment/${ECHO}`, 'pods']),
    },
  );
  return echoReadyPromise;
}

const podName = (p: Pod): string => p.metadata.name;

/** The sorted addresses of a Service's ready endpoints. */
async function readyEndpoints(namespace: string, service: string): Promise<string[]> {
  const slices = await kube.json<List<EndpointSlice>>([
    'get', 'endpointslices', '-n', namespace, '-l', `kubernetes.io/service-name=${service}`,
  ]);
  return readyEndpointAddresses(slices.items).sort();
}

t.test('the node is Ready', async (t) => {
  const nodes = await eventually(
    async () => {
      const list = await kube.json<List<Node>>(['get', 'nodes']);
      if (list.items.length === 0) throw new Error('the cluster has no nodes');
      const notReady = list.items.filter((n) => !isNodeReady(n));
      if (notReady.length > 0) {
        throw new Error(notReady.map((n) => `${n.metadata.name}: ${formatConditions(n.status?.conditions)}`).join('; '));
      }
      return list.items;
    },
    {
      what: 'every node Ready',
      timeoutMs: 60_000,
      intervalMs: 1_000,
      diagnose: () => kube.diagnostics(undefined, ['nodes']),
    },
  );
  t.ok(nodes.length >= 1, `${nodes.length} node(s)`);
  for (const node of nodes) t.ok(isNodeReady(node), `node ${node.metadata.name} has condition Ready=True`);
  if (cluster.nodeName !== undefined) {
    t.ok(
      nodes.some((n) => n.metadata.name === cluster.nodeName),
      `TP_NODE_NAME=${cluster.nodeName} is one of the nodes (${nodes.map((n) => n.metadata.name).join(', ')})`,
    );
  }
});

t.test(`a Deployment of ${ECHO_IMAGE} with ${ECHO_REPLICAS} replicas becomes available on distinct pod IPs`, async (t) => {
  const { deployment, pods } = await echoReady();
  t.equal(deployment.status?.availableReplicas, ECHO_REPLICAS, 'availableReplicas');
  t.equal(pods.length, ECHO_REPLICAS, `${ECHO_REPLICAS} ready pods`);
  const ips = pods.map((p) => p.status?.podIP ?? '');
  for (const [i, ip] of ips.entries()) t.not(isIP(ip), 0, `pod ${podName(pods[i] as Pod)} has pod IP ${ip}`);
  t.equal(new Set(ips).size, ECHO_REPLICAS, `pod IPs are distinct: ${ips.join(', ')}`);
});

t.test('a pod reaches the echo pods through the ClusterIP Service by DNS name, answered by both replicas', async (t) => {
  const { pods } = await echoReady();
  const service = await kube.json<Service>(['get', 'service', ECHO, '-n', ns]);
  const clusterIP = service.spec?.clusterIP ?? '';
  t.not(isIP(clusterIP), 0, `service/${ECHO} has a ClusterIP (${clusterIP})`);
  // Pods being Ready does not mean the Service's endpoints have caught up; kube-proxy programs
  // from the EndpointSlices, so wait for both pod IPs to be listed there as ready.
  const podIPs = pods.map((p) => p.status?.podIP ?? '').sort();
  await eventually(
    async () => {
      const ready = await readyEndpoints(ns, ECHO);
      if (JSON.stringify(ready) !== JSON.stringify(podIPs)) {
        throw new Error(`ready endpoints [${ready.join(', ')}], want [${podIPs.join(', ')}]`);
      }
    },
    {
      what: `service/${ECHO} endpoints`,
      timeoutMs: 60_000,
      intervalMs: POLL_MS,
      diagnose: () => kube.diagnostics(ns, [`service/${ECHO}`, 'endpointslices']),
    },
  );
  // Likewise the cluster DNS: on a cluster that has only just come up, CoreDNS may still be
  // starting, and a lookup then fails outright (ENOTFOUND) rather than waiting.
  await eventually(
    async () => {
      const ready = await readyEndpoints('kube-system', 'kube-dns');
      if (ready.length === 0) throw new Error('service kube-system/kube-dns has no ready endpoints');
    },
    {
      what: 'cluster DNS (kube-system/kube-dns) ready',
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: POLL_MS,
      diagnose: () => kube.diagnostics('kube-system', ['service/kube-dns', 'pods']),
    },
  );

  const urls = [`http://${ECHO}.${ns}.svc.cluster.local/by-fqdn`, `http://${ECHO}/by-short-name`];
  const probe = 'probe-dns';
  await kube.apply([nodeScriptPod(ns, probe, PROBE_SCRIPT, probeEnv(urls, ECHO_REPLICAS))]);
  const phase = await eventually(
    async () => {
      const pod = await kube.json<Pod>(['get', 'pod', probe, '-n', ns]);
      const p = pod.status?.phase;
      if (p !== 'Succeeded' && p !== 'Failed') throw new Error(`pod/${probe} is ${p ?? 'without a phase'}`);
      return p;
    },
    {
      what: `pod/${probe} finished`,
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: POLL_MS,
      diagnose: async () =>
        (await kube.diagnostics(ns, [`pod/${probe}`])) +
        `\n### logs\n${await kube.kubectl(['logs', probe, '-n', ns]).catch((e: unknown) => String(e))}`,
    },
  );
  const logs = await kube.kubectl(['logs', probe, '-n', ns]);
  t.equal(phase, 'Succeeded', `pod/${probe} succeeded`, { logs });
  const results = parseProbeResult(logs);
  t.equal(results.length, urls.length, 'one result per URL');
  const names = pods.map(podName).sort();
  for (const r of results) {
    t.equal(r.address, clusterIP, `${new URL(r.url).hostname} resolves to the ClusterIP`);
    t.same(r.errors, [], `no errors reaching ${r.url}`);
    t.ok(r.statuses.length > 0 && r.statuses.every((s) => s === 200), `${r.url}: all ${r.statuses.length} answers 200`);
    t.same([...new Set(r.hosts)].sort(), names, `${r.url}: answered by both replicas over ${r.hosts.length} requests`);
  }
});

t.test('kubectl port-forward to the service reaches an echo pod', async (t) => {
  const { pods } = await echoReady();
  const forward = kube.start([
    'port-forward', '-n', ns, '--address', '127.0.0.1', `service/${ECHO}`, `:${SERVICE_PORT}`,
  ]);
  t.teardown(() => forward.stop());
  // kubectl picks the local port for `:PORT` and tells us in this line.
  const m = await forward.waitForOutput(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/, 30_000);
  const localPort = Number(m[1]);
  t.equal(Number(m[2]), ECHO_CONTAINER_PORT, 'forwards to the container port behind the service port');

  const url = `http://127.0.0.1:${localPort}/through-port-forward?x=1`;
  const res = await httpGet(url, 10_000);
  t.equal(res.status, 200, 'HTTP 200');
  const body = JSON.parse(res.body) as { host?: string; method?: string; path?: string };
  t.equal(body.method, 'GET', 'echo saw a GET');
  t.match(body.path ?? '', /^\/through-port-forward/, 'echo saw our path');
  t.ok(pods.map(podName).includes(body.host ?? ''), `answered by an echo pod (${body.host ?? '?'})`);

  await forward.stop();
  t.ok(forward.exited(), 'kubectl port-forward exited after being stopped');
  await t.rejects(httpGet(url, 5_000), 'the local port is closed once port-forward is gone');
});

t.test('kubectl exec runs a command in an echo pod', async (t) => {
  const { pods } = await echoReady();
  const pod = podName(pods[0] as Pod);
  const out = await kube.kubectl(['exec', '-n', ns, pod, '-c', 'echo', '--', 'node', '-e', 'console.log(process.env.HOSTNAME)']);
  t.equal(out.trim(), pod, 'HOSTNAME inside the container is the pod name');
});

t.test('the API server calls a TLS mutating webhook served by this process, and its patch lands', async (t) => {
  const hostAddress = cluster.hostAddress;
  if (hostAddress === undefined) {
    t.fail(`TP_HOST_ADDRESS is not set (not in the environment nor ${cluster.source}); run \`npm run cluster:up\``);
    return;
  }
  const MUTATED = 'tp-smoke/mutated';
  // Only pods carrying this label go to the webhook, on top of the namespace selector.
  const selector = { 'tp-smoke/webhook': run };
  const dir = await mkdtemp(join(tmpdir(), 'tp-smoke-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const tls = await generateServingCert({ dir, hosts: [hostAddress] });
  const webhook: WebhookServer = await startWebhookServer({
    host: hostAddress,
    tls,
    path: '/mutate',
    admit: (request) => ({ allowed: true, patch: addLabelPatch(request.object, MUTATED, 'true') }),
  });
  t.teardown(async () => {
    // Configuration first: with failurePolicy Fail, a registered webhook whose server is gone
    // would block pod creation in the namespace.
    await cleanUp(`mutatingwebhookconfiguration/${webhookConfigName}`, deleteWebhookConfig);
    await webhook.close();
  });
  await kube.apply([
    mutatingWebhookConfiguration({
      name: webhookConfigName,
      url: webhook.url,
      caBundlePem: tls.caCertPem,
      namespace: ns,
      objectSelector: { matchLabels: selector },
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
    }),
  ]);

  const name = 'mutated';
  const pod = echoPod(ns, name, selector);
  // The API server learns about webhook configurations through an informer, so a pod created
  // right after `apply` may be admitted without it. A server-side dry run goes through admission
  // (allowed because the webhook declares sideEffects: None) without creating anything: poll
  // with it until the webhook's patch shows up, then create the pod for real.
  await eventually(
    async () => {
      const out = await kube.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify(pod),
        timeoutMs: 15_000,
      });
      const labels = (JSON.parse(out) as Pod).metadata.labels ?? {};
      if (labels[MUTATED] !== 'true') throw new Error(`dry-run pod admitted without the label: ${JSON.stringify(labels)}`);
    },
    {
      what: 'the webhook becoming active',
      timeoutMs: 30_000,
      intervalMs: POLL_MS,
      diagnose: async () =>
        `webhook server ${webhook.url} has received ${webhook.requests.length} review(s)\n` +
        (await kube.diagnostics(undefined, [`mutatingwebhookconfiguration/${webhookConfigName}`])),
    },
  );

  const seenBefore = webhook.requests.length;
  await kube.kubectl(['create', '-f', '-'], { input: JSON.stringify(pod) });
  const isOurPod = (r: AdmissionRequest): boolean =>
    r.dryRun !== true && r.namespace === ns && (r.object as Pod | undefined)?.metadata?.name === name;
  const reviews = webhook.requests.slice(seenBefore).filter(isOurPod);
  t.ok(reviews.length >= 1, `the webhook received a review for pod ${ns}/${name}`);
  const review = reviews[0];
  t.equal(review?.operation, 'CREATE', 'for a CREATE');
  t.same(review?.kind, { group: '', version: 'v1', kind: 'Pod' }, 'of a Pod');

  const created = await kube.json<Pod>(['get', 'pod', name, '-n', ns]);
  t.equal(created.metadata.labels?.[MUTATED], 'true', `pod ${name} carries ${MUTATED}=true from the patch`);
  t.equal(created.metadata.labels?.['tp-smoke/webhook'], run, 'and keeps its own labels');
});
