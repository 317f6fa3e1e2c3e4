/**
 * Bad local input to `intercept`, on the real cluster: each is refused with an error that names
 * the problem and the fix, before anything in the cluster changes. The test compares the
 * namespace's objects (the workload's generation, spec and annotations, its pods, the
 * telepresence-agents ConfigMap) before and after every attempt.
 *
 * Installs the manager when it is missing and leaves it installed (other suites share it); one
 * namespace of its own, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createTelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(15 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-input-${randomBytes(3).toString('hex')}`;
const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const scratch = mkdtempSync(join(tmpdir(), 'tp-input-'));

const app = 'untouched';
const objects = [
  namespace(ns),
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app } },
      template: {
        metadata: { labels: { app } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'app', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent', ports: [{ name: 'http', containerPort: 8080 }] }],
        },
      },
    },
  },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: ns }, spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
];

interface Deployment {
  metadata: { generation?: number; annotations?: Record<string, string> };
  spec: unknown;
}

/** What an intercept would change in the namespace, as comparable JSON. */
async function namespaceState(): Promise<string> {
  const d = await kube.json<Deployment>(['-n', ns, 'get', 'deployment', app]);
  const pods = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`]);
  const cms = await kube.json<List<{ metadata: { name: string }; data?: Record<string, string> }>>(['-n', ns, 'get', 'configmaps']);
  return JSON.stringify({
    generation: d.metadata.generation,
    annotations: d.metadata.annotations ?? {},
    spec: d.spec,
    pods: pods.items.map((p) => p.metadata.name).sort(),
    configMaps: cms.items.map((c) => ({ name: c.metadata.name, data: c.data ?? {} })).sort((a, b) => a.name.localeCompare(b.name)),
  });
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await kube.apply(objects);
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=120s'], { timeoutMs: 130_000 });
  await cli.ok(['install'], 300_000);
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.run(['quit']).catch(() => undefined);
  await cli.dispose();
  rmSync(scratch, { recursive: true, force: true });
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
});

const notEmpty = join(scratch, 'not-empty');
const cases: { name: string; args: string[]; stderr: RegExp }[] = [
  { name: 'an --env-file in a folder that does not exist', args: ['--env-file', join(scratch, 'nope', 'web.env')], stderr: /cannot write --env-file .*: the folder .*nope does not exist[\s\S]*mkdir -p/ },
  { name: 'an --env-json that is a folder', args: ['--env-json', scratch], stderr: /cannot write --env-json .*: it is a folder/ },
  { name: '--name with a slash', args: ['--name', 'a/b'], stderr: /intercept name "a\/b" is not a DNS label[\s\S]*--name/ },
  { name: '--name that climbs out of the temporary folder', args: ['--name', '../../etc/x'], stderr: /intercept name "..\/..\/etc\/x" is not a DNS label/ },
  { name: 'a --mount folder that is not empty', args: ['--mount', notEmpty], stderr: /not empty/ },
  { name: 'a --mount path that is a file', args: ['--mount', join(notEmpty, 'file')], stderr: /it is not a directory/ },
  { name: 'a -- command that does not exist', args: ['--', 'no-such-command-here'], stderr: /cannot run no-such-command-here: not found on PATH/ },
  { name: 'a local port out of range', args: ['--port', '70000'], stderr: /invalid --port "70000"/ },
];

t.test('bad local input is refused before anything in the cluster changes', async (t) => {
  mkdirSync(notEmpty);
  writeFileSync(join(notEmpty, 'file'), 'x');
  const before = await namespaceState();
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const args = c.args.includes('--port') ? ['intercept', app, ...c.args] : ['intercept', app, '--port', '7403:http', ...c.args];
      const started = Date.now();
      const r = await cli.run(args, 60_000);
      t.equal(r.exitCode, 2, `a user error (exit 2): ${r.stderr.trim()}`);
      t.match(r.stderr, c.stderr, 'names the problem and the fix');
      t.comment(`refused in ${Date.now() - started} ms`);
      t.equal(await namespaceState(), before, 'the namespace is as it was: no ConfigMap entry, no restart, no annotation');
    });
  }
});
