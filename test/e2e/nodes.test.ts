/**
 * Intercepts across the cluster's nodes: a workload with a pod on every node (the control plane
 * included), and a caller on every node. Every pod's traffic-agent must send what it receives to
 * the workstation, whichever node the agent, the caller, the traffic-manager and the daemon's
 * port-forward land on. On a one-node cluster this is the one node; on a two-node kind cluster
 * (TP_KIND_NODES=2) it is where pod networking between nodes and each node's kube-proxy count.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it); one
 * namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { hostsAnswering } from '../src/fresh-gets.js';
import type { List, Node, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(15 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-nodes-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
/** kind keeps its control plane tainted when it has workers; the suite's pods go there too. */
const TOLERATE_ALL = [{ operator: 'Exists' }];

function spread(replicas: number): object[] {
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'spread', namespace: ns },
      spec: {
        replicas,
        // Every node holds one pod: a new one can only take the place of one that went.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
        selector: { matchLabels: { app: 'spread' } },
        template: {
          metadata: { labels: { app: 'spread' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            tolerations: TOLERATE_ALL,
            // One pod per node, before and after the rollout that brings the agents.
            affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'spread' } } }] } },
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
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'spread', namespace: ns }, spec: { selector: { app: 'spread' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  ];
}

/** A caller pinned to `node`. */
function caller(node: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: callerName(node), namespace: ns },
    spec: {
      nodeName: node,
      tolerations: TOLERATE_ALL,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }],
    },
  };
}

const callerName = (node: string): string => `caller-${node.replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63);

async function nodeNames(): Promise<string[]> {
  const list = await kube.json<List<Node>>(['get', 'nodes']);
  return list.items.map((n) => n.metadata.name).sort();
}

async function spreadPods(): Promise<Pod[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', 'app=spread']);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined);
}

let nodes: string[] = [];

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  nodes = await nodeNames();
  await kube.apply([namespace(ns), ...spread(nodes.length), ...nodes.map(caller)]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/spread', '--timeout=180s'], { timeoutMs: 190_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod', '-l', '!app', '--timeout=180s'], { timeoutMs: 190_000 });
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.run(['quit']).catch(() => undefined);
  await cli.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

t.test("a pod on every node: each one's agent sends its traffic to the workstation, from callers on every node", async (t) => {
  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: 'workstation' })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as AddressInfo).port;

  await cli.ok(['intercept', 'spread', '--port', `${port}:http`, '--mount=false'], 300_000);
  t.teardown(() => cli.run(['leave', `spread-${ns}`]));
  // At once, from every node: `intercept` returns once the Service sends connections to the pods
  // with the agent, which must hold for every node's kube-proxy, not only the manager's.
  for (const node of nodes) {
    const first = await hostsAnswering(kube, ns, callerName(node), `http://spread.${ns}/`, 20);
    t.strictSame(first, Array(20).fill('workstation'), `right after intercept, the Service asked from ${node}: all 20 answered by the workstation`);
  }

  const pods = await spreadPods();
  t.strictSame([...new Set(pods.map((p) => p.spec?.nodeName ?? ''))].sort(), nodes, `the agents' pods are on every node (${nodes.join(', ')})`);
  t.ok(
    pods.every((p) => p.spec?.containers?.some((c) => c.name === 'traffic-agent')),
    'each one has the traffic-agent',
  );
  t.comment(`pods: ${pods.map((p) => `${p.metadata.name} on ${p.spec?.nodeName ?? '?'}`).join(', ')}`);
  const managers = await kube.json<List<Pod>>(['-n', MANAGER_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=traffic-manager']);
  t.comment(`traffic-manager on ${managers.items.map((p) => p.spec?.nodeName ?? '?').join(', ')}`);

  for (const node of nodes) {
    // Each pod by its own address, at the port the agent took over from the app: that agent, and
    // no other, answers (from the workstation).
    for (const pod of pods) {
      const agentPort = pod.spec?.containers?.find((c) => c.name === 'traffic-agent')?.ports?.find((p) => p.name === 'http')?.containerPort;
      t.ok(agentPort !== undefined, `the agent of ${pod.metadata.name} has the port named http`);
      const url = `http://${pod.status?.podIP ?? ''}:${agentPort ?? 0}/`;
      const answers = await eventually(
        async () => {
          const got = await hostsAnswering(kube, ns, callerName(node), url, 5);
          if (got.some((h) => h !== 'workstation')) throw new Error(`answered by ${got.join(', ')}`);
          return got;
        },
        { timeoutMs: 60_000, intervalMs: 500, what: `${pod.metadata.name} (on ${pod.spec?.nodeName ?? '?'}) intercepted, asked from ${node}` },
      );
      t.strictSame(answers, Array(5).fill('workstation'), `${pod.metadata.name} on ${pod.spec?.nodeName ?? '?'}, asked from ${node}: the workstation answers`);
    }
  }
});
