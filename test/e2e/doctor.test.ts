/**
 * `kubectl telepresence doctor` on the real cluster, from a workstation network namespace of its
 * own (test/src/workstation-netns.ts: this machine is the cluster's node, whose own routes clash
 * with the cluster's subnets; the namespace is a workstation that reaches only the API server):
 *   - a healthy set-up: every finding ok or a warning, exit 0, and the webhook proven by a
 *     server-side dry-run pod of an intercepted workload that comes back with the traffic-agent;
 *   - a broken set-up, each problem named by its own finding with its fix: the agent-injector
 *     scaled to 0 (restored, and waited for, in a teardown that always runs), a namespace
 *     labelled Pod Security `restricted` with a Service whose targetPort is a number, and a PATH
 *     without sshfs.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it). Run
 * it under `flock /tmp/tp-cluster.lock`: scaling the injector disturbs every other suite.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { createKube } from '../src/kube.js';
import { clusterIpService, echoDeployment, namespace } from '../src/manifests.js';
import { createTelepresenceCli } from '../src/telepresence-cli.js';
import { createWorkstationNetns, type WorkstationNetns } from '../src/workstation-netns.js';

t.setTimeout(15 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const MANAGER_NS = 'tp-system';
const id = randomBytes(3).toString('hex');
const ns = `tp-doc-${id}`;
const restricted = `tp-doc-psa-${id}`;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

interface JsonFinding {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  message: string;
  fix: string;
}

let ws: WorkstationNetns | undefined;

/** Runs doctor inside the workstation namespace; `path` replaces PATH (the CLI is then started by its absolute path). */
async function doctor(args: readonly string[], path?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (ws === undefined) throw new Error('no workstation namespace');
  const argv =
    path === undefined
      ? ['kubectl', 'telepresence', 'doctor', ...args]
      : [process.execPath, join(repoRoot, 'dist', 'kubectl-telepresence.js'), 'doctor', ...args];
  const r = await ws.run(argv, { env: { ...ws.env, ...(path === undefined ? {} : { PATH: path }) }, timeoutMs: 120_000 });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** The ready endpoints of the agent-injector Service, from its EndpointSlices (absent `ready` means ready). */
async function injectorReadyEndpoints(): Promise<number> {
  const slices = await kube.json<{ items: Array<{ endpoints?: Array<{ conditions?: { ready?: boolean } }> | null }> }>([
    '-n',
    MANAGER_NS,
    'get',
    'endpointslices',
    '-l',
    'kubernetes.io/service-name=agent-injector',
  ]);
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
}

function byCheck(findings: readonly JsonFinding[], check: string): JsonFinding {
  const f = findings.find((x) => x.check === check);
  if (f === undefined) throw new Error(`no finding ${check} among ${findings.map((x) => x.check).join(', ')}`);
  return f;
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([
    namespace(ns),
    echoDeployment(ns, 'web', 1),
    clusterIpService(ns, 'web', 80),
    namespace(restricted, { 'pod-security.kubernetes.io/enforce': 'restricted' }),
    // A numeric targetPort: intercepting it needs the agent's NET_ADMIN init container.
    clusterIpService(restricted, 'api', 80),
  ]);
  await cli.ok(['install'], 300_000);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/web', '--timeout=180s'], { timeoutMs: 190_000 });
  // The first intercept writes web's agent configuration: from then on a pod of web is one the
  // injector injects, so doctor can prove the webhook with a dry-run pod.
  await cli.ok(['intercept', 'web', '--port', '18080:http', '--mount=false'], 300_000);
  await cli.ok(['quit'], 60_000);
  ws = await createWorkstationNetns({ repoRoot, kubeconfig: cluster.kubeconfig });
  t.comment(`workstation namespace ${ws.name}, reaching only ${ws.apiServer}`);
});

t.teardown(async () => {
  try {
    await cli.dispose();
  } finally {
    try {
      await ws?.destroy();
    } finally {
      await kube.kubectl(['delete', 'namespace', ns, restricted, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
    }
  }
});

t.test('a healthy set-up: every finding ok or a warning, exit 0, the webhook proven by a dry-run pod', async (t) => {
  const res = await doctor(['-n', ns, '-o', 'json']);
  const findings = JSON.parse(res.stdout) as JsonFinding[];
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.strictSame(
    findings.filter((f) => f.status === 'fail'),
    [],
    'no check fails',
  );
  for (const check of ['traffic-manager', 'agent-injector', 'webhook', 'pod-security', 'rbac-connect', 'rbac-intercept', 'port-forward', 'tun-device', 'network-daemon', 'subnets', 'dns']) {
    t.equal(byCheck(findings, check).status, 'ok', `${check}: ${byCheck(findings, check).message}`);
  }
  t.match(byCheck(findings, 'traffic-manager').message, `v${VERSION}, 1 of 1 pods ready`);
  t.match(byCheck(findings, 'webhook').message, /^the API server called the agent-injector: a dry-run pod of deployment\/web came back with the traffic-agent/);
  t.match(byCheck(findings, 'webhook').message, /its certificate verified by the CA bundle for agent-injector\.tp-system\.svc/);
  t.match(byCheck(findings, 'port-forward').message, new RegExp(`^port-forward to tp-system/traffic-manager-[a-z0-9-]+:8081: /healthz answered 200, traffic-manager v${VERSION.replace(/\./g, '\\.')}`));
  t.match(byCheck(findings, 'subnets').message, /would be routed to the cluster, clashing with none/);
  // The dry-run left nothing: web still has exactly its own pod.
  const pods = await kube.json<{ items: Array<{ metadata: { name: string } }> }>(['-n', ns, 'get', 'pods', '-l', 'app=web']);
  t.notOk(pods.items.some((p) => p.metadata.name.includes('tp-doctor')), 'no dry-run pod was stored');

  const text = await doctor(['-n', ns]);
  t.equal(text.code, 0);
  t.match(text.stdout, /^Cluster: context \S+ \(https:\/\/[^)]+\), namespace tp-doc-\w+, traffic-manager in tp-system\n {2}\[ok\] {3}traffic-manager: /);
  t.match(text.stdout, /\nPermissions\n/);
  t.match(text.stdout, /\nWorkstation\n/);
  t.match(text.stdout, new RegExp(`\\n${findings.length} checks: \\d+ ok, \\d+ warnings?, 0 failed\\n$`));
});

t.test('a broken set-up: each problem named by its own finding, with its fix, and a non-zero exit', async (t) => {
  const replicas = await kube.kubectl(['-n', MANAGER_NS, 'get', 'deployment/agent-injector', '-o', 'jsonpath={.spec.replicas}']);
  // Registered before the injector is touched, so it runs however the test ends.
  t.teardown(async () => {
    await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/agent-injector', `--replicas=${replicas.trim() || '1'}`]);
    await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/agent-injector', '--timeout=120s'], { timeoutMs: 130_000 });
    await eventually(
      async () => {
        if ((await injectorReadyEndpoints()) === 0) throw new Error('the agent-injector Service has no ready endpoint yet');
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the agent-injector back behind its Service' },
    );
  });
  await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/agent-injector', '--replicas=0']);
  await kube.kubectl(['-n', MANAGER_NS, 'wait', '--for=delete', 'pod', '-l', 'app.kubernetes.io/name=agent-injector', '--timeout=60s'], { timeoutMs: 70_000 });
  await eventually(
    async () => {
      const ready = await injectorReadyEndpoints();
      if (ready > 0) throw new Error(`${ready} ready endpoints left`);
    },
    { timeoutMs: 30_000, intervalMs: 250, what: 'the agent-injector Service without ready endpoints' },
  );

  // A PATH with nothing on it: no sshfs (the CLI itself is started by its absolute path).
  const emptyPath = mkdtempSync(join(tmpdir(), 'tp-doc-path-'));
  t.teardown(() => rmSync(emptyPath, { recursive: true, force: true }));

  const res = await doctor(['-n', restricted, '-o', 'json'], emptyPath);
  t.equal(res.code, 3, res.stderr);
  const findings = JSON.parse(res.stdout) as JsonFinding[];

  const injector = byCheck(findings, 'agent-injector');
  t.equal(injector.status, 'fail');
  t.equal(injector.message, 'deployment/agent-injector is scaled to 0 replicas');
  t.match(injector.fix, /^kubectl( --kubeconfig \S+)? --context \S+ -n tp-system scale deployment\/agent-injector --replicas=1$/);

  const webhook = byCheck(findings, 'webhook');
  t.equal(webhook.status, 'fail');
  t.match(webhook.message, /^Service tp-system\/agent-injector has no ready endpoint: the API server cannot call the agent-injector/);

  const psa = byCheck(findings, 'pod-security');
  t.equal(psa.status, 'fail');
  t.match(psa.message, `namespace ${restricted}: its Pod Security level restricted refuses the agent's init container`);
  t.match(psa.message, /Services api have one/);
  t.match(psa.fix, `label namespace ${restricted} pod-security.kubernetes.io/enforce=privileged --overwrite`);

  const volumes = byCheck(findings, 'volumes');
  t.equal(volumes.status, 'warn', 'a missing sshfs is a warning, not a failure');
  t.match(volumes.message, /^sshfs is not on PATH: intercepts work, but without the container's volumes/);
  t.equal(volumes.fix, 'sudo apt-get install sshfs');

  // What was not broken stays ok.
  for (const check of ['traffic-manager', 'rbac-connect', 'port-forward', 'subnets']) t.equal(byCheck(findings, check).status, 'ok', check);

  const text = await doctor(['-n', restricted], emptyPath);
  t.equal(text.code, 3);
  t.match(text.stdout, '  [FAIL] agent-injector: deployment/agent-injector is scaled to 0 replicas\n         fix: kubectl');
  t.match(text.stdout, '  [warn] volumes: sshfs is not on PATH');
  t.match(text.stdout, /\n\d+ checks: \d+ ok, \d+ warnings?, 3 failed\n$/);
});
