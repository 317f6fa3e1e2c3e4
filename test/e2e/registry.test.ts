/**
 * The cluster pulls the product's images over the network, as a cluster that is not ours does: a
 * real registry server runs on this machine (test/cluster/registry.sh: the CNCF distribution
 * registry, which the nodes' containerd is told to pull from), scripts/push-images.sh builds and
 * pushes the three images to a path no node has seen, and `install --registry` points the cluster
 * there (by the name the nodes know it by, which on kind is not the loopback name Docker pushes to). The manager, the injector and the agent of an intercept then run from the pulled images
 * (their image IDs are the pushed digests), and the intercept works. A path that holds the images
 * under another version's tag is refused within seconds, with the image and the fix.
 *
 * Puts the shared manager back on the side-loaded images at the end (other suites share it); one
 * namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { answeredOnlyBy } from '../src/fresh-gets.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { namespace, shopAndClient } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, installManager } from '../src/telepresence-cli.js';

t.setTimeout(20 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-reg-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const registryScript = join(repoRoot, 'test', 'cluster', 'registry.sh');
// A path of its own on every run, so that no node holds these images before the test pulls them.
const path = `e2e-${randomBytes(3).toString('hex')}`;

interface Pushed {
  registry: string;
  version: string;
  images: { name: string; ref: string; digest: string | null; bytes: number; pulledBytes: number }[];
}

const app = shopAndClient(ns);

/** The registry as the nodes pull from it, and as this machine's Docker pushes to it (registry.sh). */
let registry = '';
let pushTo = '';

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  const up = await processRunner.run('bash', [registryScript, 'up'], { timeoutMs: 600_000 });
  if (up.exitCode !== 0) throw new Error(`registry.sh up failed: ${up.stderr}`);
  registry = /^REGISTRY=(.+)$/m.exec(up.stdout)?.[1] ?? '';
  pushTo = /^PUSH=(.+)$/m.exec(up.stdout)?.[1] ?? '';
  if (registry === '' || pushTo === '') throw new Error(`registry.sh up printed no REGISTRY= or PUSH=: ${up.stdout}`);
  await kube.apply([namespace(ns), ...app]);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/shop', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
});

t.teardown(async () => {
  await cli.run(['leave', `shop-${ns}`]);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  // The shared manager back on the side-loaded images, then the registry and the nodes' settings for it gone.
  await installManager(cli, (args, o) => kube.kubectl(args, o), MANAGER_NS);
  await cli.dispose();
  await processRunner.run('bash', [registryScript, 'down'], { timeoutMs: 60_000 });
});

/** The image and image ID of each container of the pods that match `selector`. */
async function runningImages(namespaceName: string, selector: string): Promise<{ container: string; image: string; imageID: string }[]> {
  const pods = await kube.json<List<Pod>>(['-n', namespaceName, 'get', 'pods', '-l', selector]);
  return pods.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .flatMap((p) => (p.status?.containerStatuses ?? []).map((c) => ({ container: c.name, image: c.image, imageID: c.imageID })));
}

t.test('push-images.sh builds the three images, labelled and not root, and pushes them', async (t) => {
  const pushed = await processRunner.run(
    'bash',
    [join(repoRoot, 'scripts', 'push-images.sh'), '--registry', `${pushTo}/${path}`, '--base-image', 'tp-local/base-node:bookworm', '--no-build'],
    { timeoutMs: 600_000 },
  );
  t.equal(pushed.exitCode, 0, `push-images.sh: ${pushed.stderr.slice(-2000)}`);
  t.match(pushed.stdout, /^traffic-agent: [\d.]+ MB on disk \([\d.]+ MB to download\), of which the Node runtime [\d.]+ MB and the rest \(the agent, iptables, sftp-server\) [\d.]+ MB; target: the rest at most 10\.0 MB: (met|MISSED)$/m, 'reports the agent image against the Node runtime');
  t.match(pushed.stdout, new RegExp(`install with: kubectl telepresence install --registry ${pushTo}/${path}$`, 'm'), 'and says how to install from it');
  t.comment(pushed.stdout.trim());
  const report = JSON.parse(readFileSync(join(repoRoot, 'dist', 'release', 'images.json'), 'utf8')) as Pushed;
  t.strictSame(
    report.images.map((i) => i.ref),
    ['traffic-manager', 'agent-injector', 'traffic-agent'].map((n) => `${pushTo}/${path}/${n}:${VERSION}`),
    "the three images, tagged with the CLI's version",
  );
  for (const image of report.images) {
    t.match(image.digest, /^sha256:[0-9a-f]{64}$/, `${image.name}: pushed, with a digest`);
    t.ok(image.pulledBytes > 0 && image.pulledBytes < image.bytes, `${image.name}: a node downloads ${(image.pulledBytes / 1e6).toFixed(1)} MB of its ${(image.bytes / 1e6).toFixed(1)} MB`);
    const inspected = await processRunner.run('docker', ['image', 'inspect', '-f', '{{json .Config}}', image.ref], { timeoutMs: 30_000 });
    const config = JSON.parse(inspected.stdout) as { User: string; Labels: Record<string, string> };
    t.notOk(['', '0', 'root', '0:0'].includes(config.User), `${image.name}: runs as user ${config.User}, not root`);
    t.equal(config.Labels['org.opencontainers.image.version'], VERSION, `${image.name}: OCI label version`);
    t.match(config.Labels['org.opencontainers.image.source'], /^https:\/\//, `${image.name}: OCI label source`);
    t.equal(config.Labels['org.opencontainers.image.licenses'], 'Apache-2.0', `${image.name}: OCI label licence`);
  }
  // The registry serves them: its own catalogue, over HTTP, as a node asks for it.
  const catalog = (await (await fetch(`http://${pushTo}/v2/_catalog`)).json()) as { repositories: string[] };
  t.strictSame(
    catalog.repositories.filter((r) => r.startsWith(`${path}/`)).sort(),
    [`${path}/agent-injector`, `${path}/traffic-agent`, `${path}/traffic-manager`],
    'the registry lists the three repositories',
  );
});

t.test('install --registry: the nodes pull the manager, the injector and the agent from the registry, and an intercept works', async (t) => {
  const report = JSON.parse(readFileSync(join(repoRoot, 'dist', 'release', 'images.json'), 'utf8')) as Pushed;
  const digest = (name: string): string => report.images.find((i) => i.name === name)?.digest ?? 'none';
  const started = Date.now();
  await cli.ok(['install', '--registry', `${registry}/${path}`], 300_000);
  t.comment(`install --registry took ${Date.now() - started} ms, pulls included`);
  for (const [name, selector] of [
    ['traffic-manager', 'app.kubernetes.io/name=traffic-manager'],
    ['agent-injector', 'app.kubernetes.io/name=agent-injector'],
  ] as const) {
    const running = await runningImages(MANAGER_NS, selector);
    t.ok(running.length > 0, `${name}: running`);
    for (const c of running) {
      t.equal(c.image, `${registry}/${path}/${name}:${VERSION}`, `${name}: runs the registry's image`);
      t.ok(c.imageID.endsWith(digest(name)), `${name}: pulled, its image ID the pushed digest (${c.imageID})`);
    }
  }
  const events = await kube.kubectl(['-n', MANAGER_NS, 'get', 'events', '--field-selector', 'reason=Pulled', '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}'], { timeoutMs: 30_000 });
  t.match(events, new RegExp(`Successfully pulled image "${registry.replace(/\./g, '\\.')}/${path}/traffic-manager:`), 'the kubelet reports pulling the manager from the registry');

  await cli.ok(['connect']);
  const version = await cli.json<{ manager?: { version: string; agentImage?: string } }>(['version']);
  t.strictSame(version.manager, { version: VERSION, agentImage: `${registry}/${path}/traffic-agent:${VERSION}` }, '`version` names the agent image from the registry');

  const server: Server = createServer((_req, res) => res.end(JSON.stringify({ host: 'workstation' })));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as AddressInfo).port;
  const intercepted = Date.now();
  await cli.ok(['intercept', 'shop', '--port', `${port}:http`, '--mount=false'], 300_000);
  t.comment(`the cold intercept, the agent image pulled, took ${Date.now() - intercepted} ms`);
  const agent = (await runningImages(ns, 'app=shop')).filter((c) => c.container === 'traffic-agent');
  t.equal(agent.length, 1, 'one traffic-agent');
  t.equal(agent[0]?.image, `${registry}/${path}/traffic-agent:${VERSION}`, "the agent runs the registry's image");
  t.ok(agent[0]?.imageID.endsWith(digest('traffic-agent')), `the agent was pulled: its image ID is the pushed digest (${agent[0]?.imageID ?? ''})`);
  const answers = await answeredOnlyBy(kube, ns, 'client', `http://shop.${ns}/`, 'workstation');
  t.strictSame(answers, Array(10).fill('workstation'), 'requests to the Service reach the workstation');
  await cli.ok(['leave', `shop-${ns}`]);
  await cli.ok(['quit']);
});

t.test("a registry path that holds the images under another version's tag: refused within seconds, with the image and the fix", async (t) => {
  // The images as an older release pushed them: the same repositories, another tag.
  const stale = `${registry}/${path}-old`;
  for (const name of ['traffic-manager', 'agent-injector']) {
    const tagged = await processRunner.run('docker', ['tag', `${pushTo}/${path}/${name}:${VERSION}`, `${pushTo}/${path}-old/${name}:0.0.1`], { timeoutMs: 30_000 });
    t.equal(tagged.exitCode, 0, tagged.stderr);
    const pushed = await processRunner.run('docker', ['push', '-q', `${pushTo}/${path}-old/${name}:0.0.1`], { timeoutMs: 120_000 });
    t.equal(pushed.exitCode, 0, pushed.stderr);
  }
  const started = Date.now();
  const bad = await cli.run(['install', '--registry', stale, '--timeout', '120'], 150_000);
  const took = Date.now() - started;
  t.equal(bad.exitCode, 3, `a config error: ${bad.stderr}`);
  t.match(bad.stderr, new RegExp(`the cluster's nodes cannot pull (image|images) ${stale.replace(/\./g, '\\.')}/(traffic-manager|agent-injector):${VERSION.replace(/\./g, '\\.')}`), 'names the image, with the tag that is missing');
  t.match(bad.stderr, /not found/i, "and the registry's answer: not found");
  t.match(bad.stderr, /hint: +push the images to a registry the nodes can pull from, tagged with this version/, 'and the fix');
  t.comment(`said after ${took} ms`);
  t.ok(took < 60_000, `long before the 120 s timeout (${took} ms)`);
});
