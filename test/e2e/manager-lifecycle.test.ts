/**
 * The traffic-manager's life seen from both ends, on the real cluster:
 *   - a client of another major.minor version is refused at connect with a one-line error and
 *     the fix (a real second build of the CLI, stamped with another version, against the
 *     installed manager);
 *   - the traffic-agent keeps passing traffic to the app while the manager is gone, and finds
 *     the restarted manager again by itself, so a new intercept needs no rollout.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it); one
 * namespace of its own, deleted at the end.
 */
import * as esbuild from 'esbuild';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
const ns = `tp-life-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });

const app = 'life';
const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: app, namespace: ns },
  spec: {
    // Two, so that the cold intercept below waits for the Service to leave both old pods.
    replicas: 2,
    selector: { matchLabels: { app } },
    template: {
      metadata: { labels: { app } },
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
const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: ns }, spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };
const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }], terminationGracePeriodSeconds: 1 },
};

/** GETs the Service from inside the cluster; the `host` the answer names. */
async function hostAnswering(): Promise<string> {
  const script = `fetch(process.argv[1], { signal: AbortSignal.timeout(5000) })
    .then((r) => r.json()).then((j) => console.log(j.host))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  return (await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, `http://${app}.${ns}/`], { timeoutMs: 20_000 })).trim();
}

/** Resolves once a GET of the Service from inside the cluster is answered by `host`. */
async function answeredBy(host: string, what: string): Promise<void> {
  await eventually(
    async () => {
      const h = await hostAnswering();
      if (h !== host) throw new Error(`answered by ${h}`);
    },
    { timeoutMs: 20_000, intervalMs: 500, what },
  );
}

async function podsOf(): Promise<Pod[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`]);
  return list.items.filter((p) => p.metadata.deletionTimestamp === undefined);
}

async function localServer(t: Test): Promise<{ port: number; host: string }> {
  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: name })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  const name = `workstation-${port}`;
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  return { port, host: name };
}

async function scaleManager(replicas: number): Promise<void> {
  await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/traffic-manager', `--replicas=${replicas}`]);
  if (replicas > 0) {
    await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=120s'], { timeoutMs: 130_000 });
  } else {
    await kube.kubectl(['-n', MANAGER_NS, 'wait', '--for=delete', 'pod', '-l', 'app.kubernetes.io/name=traffic-manager', '--timeout=60s'], { timeoutMs: 70_000 });
  }
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply([namespace(ns), deployment, service, clientPod]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  await cli.ok(['install'], 300_000);
});

t.teardown(async () => {
  await cli.dispose();
  // Whatever happened above, leave one manager running for whoever comes next.
  await kube.kubectl(['-n', MANAGER_NS, 'scale', 'deployment/traffic-manager', '--replicas=1']).catch(() => undefined);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
});

t.test('a client of another version is refused at connect, with the fix', async (t) => {
  // The same sources built as v9.9.0: what a user has after upgrading only the CLI.
  const other = mkdtempSync(join(tmpdir(), 'tp-other-cli-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  mkdirSync(join(other, 'dist', 'bin'), { recursive: true });
  await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: ['kubectl-plugin/src/main.ts'],
    outfile: join(other, 'dist', 'kubectl-telepresence.js'),
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'esm',
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
    define: { __TP_VERSION__: JSON.stringify('9.9.0') },
    logLevel: 'warning',
  });
  writeFileSync(join(other, 'dist', 'package.json'), '{ "type": "module" }\n');
  const shim = join(other, 'dist', 'bin', 'kubectl-telepresence');
  writeFileSync(shim, `#!/bin/sh\nexec node "$(dirname -- "$0")/../kubectl-telepresence.js" "$@"\n`);
  chmodSync(shim, 0o755);
  // findRepoRoot is not involved: the helper only needs <root>/dist/bin on PATH.
  const newer = createTelepresenceCli({ repoRoot: other, kubeconfig: cluster.kubeconfig, namespace: ns });
  t.teardown(() => newer.dispose());

  t.match(await newer.ok(['version']), /9\.9\.0/, 'the other build says it is v9.9.0');
  const r = await newer.run(['connect']);
  t.equal(r.exitCode, 3, 'a configuration error (exit 3)');
  const lines = r.stderr.trim().split('\n');
  t.match(lines[0], new RegExp(`v9\\.9\\.0.*v${VERSION.replace(/\./g, '\\.')}`), `one line names both versions:\n${r.stderr}`);
  t.match(r.stderr, /kubectl telepresence install/, 'and says how to fix it');
  const status = await newer.json<{ connection?: { connected?: boolean; error?: string } }>(['status']);
  t.equal(status.connection?.connected, false, 'no session was kept');
  t.match(status.connection?.error, /v9\.9\.0/, 'status keeps the reason');
});

t.test('the agent passes traffic to the app while the manager is gone, and finds it again', async (t) => {
  const local = await localServer(t);
  await cli.ok(['intercept', app, '--port', `${local.port}:http`], 300_000);
  // The first intercept rolls both pods out, and returns only once the Service has left the old
  // ones: asked at once, every request reaches the workstation.
  const first = await hostsAnswering(kube, ns, 'client', `http://${app}.${ns}/`, 20);
  t.strictSame(first, Array(20).fill(local.host), 'the requests sent as soon as intercept returns are all answered by the workstation');
  const pods = (await podsOf()).map((p) => p.metadata.name);

  await scaleManager(0);
  // Without a manager the agent drops its session; new connections go to the app.
  const during = await eventually(
    async () => {
      const h = await hostAnswering();
      if (!h.startsWith(`${app}-`)) throw new Error(`answered by ${h}`);
      return h;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the app answering while the manager is gone' },
  );
  t.match(during, new RegExp(`^${app}-`), 'the app answers while no manager runs');

  await scaleManager(1);
  // The old session died with the manager: the user connects again and intercepts again.
  await cli.ok(['quit']);
  await cli.ok(['connect']);
  await eventually(
    async () => {
      const listed = await cli.json<{ workloads?: Array<{ name: string; agent: string }> }>(['list']);
      const row = listed.workloads?.find((w) => w.name === app);
      if (row?.agent !== 'installed') throw new Error(`agent state ${String(row?.agent)}`);
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the agent arriving at the restarted manager' },
  );
  await cli.ok(['intercept', app, '--port', `${local.port}:http`], 120_000);
  t.same((await podsOf()).map((p) => p.metadata.name), pods, 'no rollout: the same pods');
  await answeredBy(local.host, 'the workstation answering after the restart');
  t.pass('the intercept made after the restart reaches the workstation');
  await cli.ok(['leave', `${app}-${ns}`]);
});

t.test('install from a registry the nodes cannot pull from: said within seconds, with the image and the fix; install again repairs it', async (t) => {
  // Nothing listens on port 1 of this machine's loopback: a pull from there fails at once, as
  // one from a misspelled or unreachable registry does.
  const started = Date.now();
  const bad = await cli.run(['install', '--registry', '127.0.0.1:1/nowhere', '--timeout', '120'], 150_000);
  const took = Date.now() - started;
  t.equal(bad.exitCode, 3, `a config error: ${bad.stderr}`);
  t.match(bad.stderr, /the cluster's nodes cannot pull (image|images) 127\.0\.0\.1:1\/nowhere\/(traffic-manager|agent-injector):/, 'names the image');
  t.match(bad.stderr, /hint: +push the images to a registry the nodes can pull from.* install --registry <host\/path>/, 'and the fix');
  t.comment(`said after ${took} ms`);
  t.ok(took < 60_000, `long before the 120 s timeout (${took} ms)`);
  // The running manager kept serving meanwhile (a rolling update keeps the old pod until a new one is ready).
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.run(['quit']);
  await cli.ok(['connect']);
  const version = await cli.json<{ manager?: { version: string; agentImage?: string } }>(['version']);
  t.strictSame(version.manager, { version: VERSION, agentImage: `tp-local/traffic-agent:${VERSION}` }, '`version` shows the manager and the agent image it injects, the pullable ones again');
});
