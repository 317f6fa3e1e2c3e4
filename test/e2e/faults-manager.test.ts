/**
 * Faults of the traffic-manager while a workstation intercepts, on the real cluster:
 *   - the manager's pod is deleted: the intercept comes back by itself (the daemon arrives again
 *     under its session id and creates it again; the agent finds the new manager), traffic is on
 *     the workstation again within seconds, the intercept is listed again, and nothing is asked
 *     of the user;
 *   - the manager is upgraded (a rolling update to a new pod, as `install` of a new version does):
 *     the same;
 *   - a command run right after the pod was replaced waits for the new manager instead of failing;
 *   - a workload deleted while the manager was away: its intercept is reported lost, with why,
 *     in `status`.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it); one
 * namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { hostsAnswering } from '../src/fresh-gets.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-fault-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const MANAGER_SELECTOR = 'app.kubernetes.io/name=traffic-manager';
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
/**
 * The bound this suite holds the product to: every pod's agent back on the intercept within this
 * long of a manager restart (the suite prints the figure; on the two-core harness, 2-5 s).
 */
const RESUME_WITHIN_MS = 10_000;

function app(name: string, replicas: number): object[] {
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
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
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  ];
}

const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }], terminationGracePeriodSeconds: 1 },
};

async function localServer(t: Test): Promise<{ port: number; host: string }> {
  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: name })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  const name = `workstation-${port}`;
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  return { port, host: name };
}

async function managerPods(): Promise<string[]> {
  const list = await kube.json<List<Pod>>(['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_SELECTOR]);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined).map((p) => p.metadata.name);
}

async function podsOf(name: string): Promise<string[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${name}`]);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined).map((p) => p.metadata.name).sort();
}

interface Status {
  connection?: { connected?: boolean; sessionId?: string; error?: string; lostIntercepts?: Array<{ name: string; reason: string }> };
  intercepts?: Array<{ name: string; disposition?: string }>;
}

/**
 * Polls GETs of the Service from inside the cluster until `ROUND` of them in a row, each a new
 * connection as a caller's would be, are answered by `host`: every pod's agent takes the
 * intercept again, not just the first one back. Resolves with the milliseconds since `since`.
 */
async function backOnWorkstation(t: Test, name: string, host: string, since: number, what: string): Promise<number> {
  const ROUND = 20;
  try {
    await eventually(
      async () => {
        const answers = await hostsAnswering(kube, ns, 'client', `http://${name}.${ns}/`, ROUND);
        const others = answers.filter((h) => h !== host);
        if (others.length > 0) throw new Error(`${others.length} of ${ROUND} answered by ${others[0] ?? ''}`);
      },
      { timeoutMs: 60_000, intervalMs: 200, what },
    );
  } catch (err: unknown) {
    await explain(t, name);
    throw err;
  }
  return Date.now() - since;
}

/** What the daemon, the status and the agents of `name` said, for a failure to be understood. */
async function explain(t: Test, name: string): Promise<void> {
  t.comment(`status:\n${(await cli.run(['status'])).stdout}`);
  t.comment(`daemon log (end):\n${cli.daemonLog()}`);
  for (const pod of await podsOf(name)) {
    const logs = await kube.kubectl(['-n', ns, 'logs', pod, '-c', 'traffic-agent', '--tail=30']).catch((e: unknown) => String(e));
    t.comment(`traffic-agent of ${pod} (end):\n${logs}`);
  }
  const managers = await kube.kubectl(['-n', MANAGER_NS, 'logs', '-l', MANAGER_SELECTOR, '--tail=40']).catch((e: unknown) => String(e));
  t.comment(`traffic-manager (end):\n${managers}`);
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), ...app('victim', 2), ...app('doomed', 1), clientPod]);
  for (const d of ['victim', 'doomed']) {
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${d}`, '--timeout=120s'], { timeoutMs: 130_000 });
  }
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.run(['quit']).catch(() => undefined);
  await cli.dispose();
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=120s'], { timeoutMs: 130_000 }).catch(() => undefined);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

t.test("the manager's pod deleted during an intercept: it resumes by itself", async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'victim', '--port', `${local.port}:http`], 300_000);
  t.teardown(() => cli.run(['leave', `victim-${ns}`]));
  t.strictSame(await hostsAnswering(kube, ns, 'client', `http://victim.${ns}/`, 10), Array(10).fill(local.host), 'intercepted before the fault');
  const before = await cli.json<Status>(['status']);
  const pods = await podsOf('victim');
  const [oldManager] = await managerPods();

  const deleted = Date.now();
  await kube.kubectl(['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  // The agents drop their session with the manager, so for a moment the app answers; then the
  // daemon and the agent find the new manager and the intercept is made again.
  const took = await backOnWorkstation(t, 'victim', local.host, deleted, 'the workstation answering again after the manager pod was deleted');
  t.comment(`traffic back on the workstation ${took} ms after the manager pod was deleted`);
  t.ok(took <= RESUME_WITHIN_MS, `within ${RESUME_WITHIN_MS} ms (${took} ms)`);
  t.notOk((await managerPods()).includes(oldManager ?? ''), 'served by a new manager pod');

  const after = await cli.json<Status>(['status']);
  t.equal(after.connection?.connected, true, 'still connected: nothing asked of the user');
  t.equal(after.connection?.sessionId, before.connection?.sessionId, 'under the same session id');
  t.strictSame(after.intercepts?.map((i) => i.name), [`victim-${ns}`], 'the intercept is listed again');
  t.strictSame(after.connection?.lostIntercepts ?? [], [], 'nothing lost');
  const listed = await cli.json<{ workloads?: Array<{ name: string; intercepts?: unknown[] }> }>(['list']);
  t.equal(listed.workloads?.find((w) => w.name === 'victim')?.intercepts?.length, 1, '`list` shows it too');
  t.strictSame(await podsOf('victim'), pods, 'restored without a rollout: the same pods');
  const answers = await hostsAnswering(kube, ns, 'client', `http://victim.${ns}/`, 50);
  t.strictSame(answers, Array(50).fill(local.host), 'every request after that reaches the workstation');
});

t.test('the manager upgraded (a rolling update) during an intercept: it resumes by itself', async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'victim', '--port', `${local.port}:http`], 300_000);
  t.teardown(() => cli.run(['leave', `victim-${ns}`]));
  t.strictSame(await hostsAnswering(kube, ns, 'client', `http://victim.${ns}/`, 5), Array(5).fill(local.host), 'intercepted before the upgrade');
  const [oldManager] = await managerPods();

  // A new pod template, as a new image would be: the new pod comes up beside the old one, which
  // then goes.
  const started = Date.now();
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', 'deployment/traffic-manager']);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=120s'], { timeoutMs: 130_000 });
  const rolled = Date.now();
  t.comment(`the rollout took ${rolled - started} ms`);
  const took = await backOnWorkstation(t, 'victim', local.host, rolled, 'the workstation answering after the upgrade');
  t.comment(`traffic on the workstation ${took} ms after the rollout finished`);
  t.ok(took <= RESUME_WITHIN_MS, `within ${RESUME_WITHIN_MS} ms of the rollout (${took} ms)`);
  t.notOk((await managerPods()).includes(oldManager ?? ''), 'served by the new manager pod');
  const after = await cli.json<Status>(['status']);
  t.strictSame(after.intercepts?.map((i) => i.name), [`victim-${ns}`], 'the intercept is listed again');
  const answers = await hostsAnswering(kube, ns, 'client', `http://victim.${ns}/`, 30);
  t.strictSame(answers, Array(30).fill(local.host), 'every request after that reaches the workstation');
});

t.test('a command run right after the manager pod was replaced waits for the new one', async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', 'doomed', '--port', `${local.port}:http`], 300_000);
  await kube.kubectl(['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  // At once: the daemon's channel to the old pod is dead; the command must wait, not fail.
  const left = await cli.run(['leave', `doomed-${ns}`], 60_000);
  t.equal(left.exitCode, 0, `leave succeeded: ${left.stderr}`);
  await kube.kubectl(['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  const uninstalled = await cli.run(['uninstall', '--agent', 'doomed'], 120_000);
  t.equal(uninstalled.exitCode, 0, `uninstall --agent succeeded at once after the restart: ${uninstalled.stderr}`);
  const cm = await kube.json<{ data?: Record<string, string> }>(['-n', ns, 'get', 'configmap', 'telepresence-agents']);
  t.notOk('doomed' in (cm.data ?? {}), 'the agent configuration is gone');
});

t.test('a workload deleted while the manager was away: its intercept is reported lost, with why', async (t) => {
  await kube.apply(app('brief', 1));
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/brief', '--timeout=120s'], { timeoutMs: 130_000 });
  const local = await localServer(t);
  await cli.ok(['intercept', 'brief', '--port', `${local.port}:http`], 300_000);
  await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/traffic-manager', '--replicas=0']);
  t.teardown(() => kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/traffic-manager', '--replicas=1']));
  await kube.kubectl(['-n', MANAGER_NS, 'wait', '--for=delete', 'pod', '-l', MANAGER_SELECTOR, '--timeout=60s'], { timeoutMs: 70_000 });
  await kube.kubectl(['-n', ns, 'delete', 'deployment/brief', 'service/brief', '--wait=true'], { timeoutMs: 60_000 });
  await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/traffic-manager', '--replicas=1']);
  const lostBrief = (s: Status) => s.connection?.lostIntercepts?.find((l) => l.name === `brief-${ns}`);
  const status = await eventually(
    async () => {
      const s = await cli.json<Status>(['status']);
      if (lostBrief(s) === undefined) throw new Error(`not reported yet: ${JSON.stringify(s.connection)}`);
      return s;
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'the lost intercept reported' },
  );
  t.strictSame(status.connection?.lostIntercepts?.map((l) => l.name), [`brief-${ns}`], 'status names the lost intercept, and only it');
  t.match(lostBrief(status)?.reason, /brief/, `and why: ${lostBrief(status)?.reason ?? ''}`);
  t.notOk(status.intercepts?.some((i) => i.name === `brief-${ns}`), 'it is no longer listed as an intercept');
  const text = await cli.ok(['status']);
  t.match(text, new RegExp(`brief-${ns}: LOST after the traffic-manager restarted`), 'the text status says so');
});
