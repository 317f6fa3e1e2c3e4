/**
 * The remote environment, remote volumes and process launching, end to end on the real cluster:
 * the env files and a launched process see what the pod sees, the container's volumes are
 * readable (and writable) through a real sshfs mount, `-- cmd` and `--docker-run` answer an
 * in-cluster request and clean up, and bad input fails clearly with nothing left behind.
 *
 * Shares the cluster with other suites: installs the manager only when it is missing (and rolls
 * it to this build's images when it runs older ones), never uninstalls it; one namespace of its
 * own, deleted at the end.
 */
import { parseDotenv } from '@telepresence-ts/core';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { findRepoRoot, prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { processRunner } from '../src/process-runner.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';

t.setTimeout(30 * 60_000);

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const repoRoot = findRepoRoot(import.meta.dirname);
const ns = `tp-renv-${randomBytes(3).toString('hex')}`;
const MANAGER_NS = 'tp-system';
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const cli: TelepresenceCli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
const work = mkdtempSync(join(tmpdir(), 'tp-renv-'));
const NAME = `renv-${ns}`;

// ---------------------------------------------------------------------------------------------
// Fixtures

/** Values that need quoting in a dotenv file: spaces, quotes, `$`, a backslash, a newline. */
const TRICKY = 'a "quoted" $value with \\ and\nsecond line';

const objects = [
  namespace(ns),
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: ns }, stringData: { password: 's3cr3t pass' } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns }, data: { LOG_LEVEL: 'debug', FEATURE_X: 'on' } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'files', namespace: ns }, data: { 'app.conf': 'answer=42\n' } },
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'renv', namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'renv' } },
      template: {
        metadata: { labels: { app: 'renv' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image: ECHO_IMAGE,
              imagePullPolicy: 'IfNotPresent',
              // The app writes a file into its emptyDir, then serves as usual.
              command: ['sh', '-c', 'echo from-pod > /scratch/pod.txt && exec node /app/server.js'],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
              envFrom: [{ configMapRef: { name: 'settings' } }],
              env: [
                { name: 'GREETING', value: 'hello' },
                { name: 'TRICKY', value: TRICKY },
                { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
                // A reference to an earlier variable and one to an envFrom key.
                { name: 'BANNER', value: '$(GREETING) at level $(LOG_LEVEL)' },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              ],
              volumeMounts: [
                { name: 'files', mountPath: '/etc/app', readOnly: true },
                { name: 'scratch', mountPath: '/scratch' },
              ],
            },
          ],
          volumes: [
            { name: 'files', configMap: { name: 'files' } },
            { name: 'scratch', emptyDir: {} },
          ],
        },
      },
    },
  },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'renv', namespace: ns }, spec: { selector: { app: 'renv' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'client', namespace: ns },
    spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }] },
  },
];

/** GETs the Service from inside the cluster and returns the body. */
async function fromCluster(path = '/'): Promise<string> {
  const script = `fetch(process.argv[1], { signal: AbortSignal.timeout(5000) })
    .then((r) => r.text()).then((b) => console.log(b))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  return (await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, `http://renv.${ns}${path}`], { timeoutMs: 20_000 })).trim();
}

async function appPod(): Promise<string> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', 'app=renv']);
  const pod = list.items.find((p) => p.metadata.deletionTimestamp === undefined && (p.spec?.containers ?? []).some((c) => c.name === 'traffic-agent'));
  if (pod === undefined) throw new Error('no pod of renv with the agent');
  return pod.metadata.name;
}

/** The app container's environment as its processes see it (`env -0`: values may hold newlines). */
async function podEnv(pod: string): Promise<Record<string, string>> {
  const out = await kube.kubectl(['-n', ns, 'exec', pod, '-c', 'app', '--', 'env', '-0']);
  const env: Record<string, string> = {};
  for (const entry of out.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/**
 * What the pod spec and the kubelet give the container, which is what the intercept must report.
 * Left out: the variables of the app's image (`ENV` in its Dockerfile: PATH, PORT), HOME and
 * HOSTNAME, which the container runtime sets. The pod spec sets none of them, the agent (another
 * image) cannot see them, and a local process keeps the workstation's own PATH and HOME.
 */
async function specEnv(pod: string): Promise<Record<string, string>> {
  const image = JSON.parse(await processRunner.run('docker', ['image', 'inspect', '--format', '{{json .Config.Env}}', ECHO_IMAGE]).then((r) => r.stdout)) as string[];
  const imageVars = new Set(image.map((e) => e.slice(0, e.indexOf('='))));
  const env = await podEnv(pod);
  for (const name of Object.keys(env)) if (imageVars.has(name) || name === 'HOME' || name === 'HOSTNAME') delete env[name];
  return env;
}

/** The intercept's environment without the TELEPRESENCE_* variables the client adds. */
function withoutOurs(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TELEPRESENCE_')));
}

/** FUSE mounts currently listed by the kernel at `dir`. */
function mountedAt(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir.replace(/ /g, '\\040'));
}

async function ourIntercepts(tp: TelepresenceCli = cli): Promise<string[]> {
  const out = await tp.json<{ workloads?: Array<{ name: string; intercepts?: Array<{ name?: string }> }> }>(['list']);
  return (out.workloads ?? []).flatMap((w) => (w.intercepts ?? []).map((i) => i.name ?? ''));
}

/** A free local port. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A one-shot HTTP server script: answers the first request on $PORT_TO_USE with `body`, then exits. */
const ONE_SHOT = `
const http = require('node:http');
const body = () => JSON.stringify({ who: 'local', greeting: process.env.GREETING, root: process.env.TELEPRESENCE_ROOT,
  conf: process.env.TELEPRESENCE_ROOT ? require('node:fs').readFileSync(process.env.TELEPRESENCE_ROOT + '/etc/app/app.conf', 'utf8') : '' });
if (process.env.ENV_OUT) require('node:fs').writeFileSync(process.env.ENV_OUT, JSON.stringify(process.env));
const server = http.createServer((q, s) => { s.end(body(), () => server.close()); });
server.listen(Number(process.env.PORT_TO_USE), process.env.LISTEN_HOST || '127.0.0.1');
`;

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

/** Rolls a manager Deployment to the image just built when its pod runs another one. */
async function useBuiltImage(deployment: string, image: string): Promise<void> {
  const id = (await processRunner.run('docker', ['image', 'inspect', '--format', '{{.Id}}', image])).stdout.trim();
  const pods = await kube.json<List<Pod & { status?: { containerStatuses?: Array<{ imageID?: string }> } }>>(['-n', MANAGER_NS, 'get', 'pods']);
  const running = pods.items.filter((p) => p.metadata.name.startsWith(`${deployment}-`) && p.metadata.deletionTimestamp === undefined);
  if (running.length > 0 && running.every((p) => p.status?.containerStatuses?.[0]?.imageID === id)) return;
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', `deployment/${deployment}`]);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', `deployment/${deployment}`, '--timeout=180s'], { timeoutMs: 190_000 });
}

t.before(async () => {
  await prepareSuiteImages(repoRoot, cluster.kubeconfig);
  await cli.ok(['install'], 300_000);
  await useBuiltImage('traffic-manager', `tp-local/traffic-manager:${VERSION}`);
  await useBuiltImage('agent-injector', `tp-local/agent-injector:${VERSION}`);
  await kube.apply(objects);
  await kube.kubectl(['-n', ns, 'rollout', 'status', 'deployment/renv', '--timeout=120s'], { timeoutMs: 130_000 });
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], { timeoutMs: 130_000 });
  await cli.ok(['connect']);
});

t.teardown(async () => {
  await cli.dispose();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Environment

t.test('the env files hold exactly what the pod sees', async (t) => {
  const envFile = join(work, 'renv.env');
  const envJson = join(work, 'renv.json');
  const out = await cli.ok(['intercept', 'renv', '--port', `${await freePort()}:http`, '--env-file', envFile, '--env-json', envJson, '--mount=false'], 300_000);
  t.match(out, /Env file {7}: .*renv\.env/, `reports the files:\n${out}`);
  const pod = await appPod();
  const want = await specEnv(pod);
  t.equal(want['DB_PASSWORD'], 's3cr3t pass', 'the pod itself resolved the Secret (sanity)');
  t.equal(want['BANNER'], 'hello at level debug', 'and the $(VAR) references');

  const json = JSON.parse(readFileSync(envJson, 'utf8')) as Record<string, string>;
  t.strictSame(withoutOurs(json), want, 'env-json: literal, Secret, envFrom, $(VAR), downward API and service links, nothing else');
  t.strictSame(withoutOurs(parseDotenv(readFileSync(envFile, 'utf8'))), want, 'env-file reads back the same, quoting included');
  t.equal(json['TELEPRESENCE_CONTAINER'], 'app');
  t.equal(json['TELEPRESENCE_ROOT'], '', 'not mounted');
  t.equal(json['TELEPRESENCE_MOUNTS'], '/etc/app:/scratch:/var/run/secrets/kubernetes.io/serviceaccount', 'the mounts, the service-account token included');
  await cli.ok(['leave', NAME]);
});

t.test('-- cmd: the command gets the environment, answers a request from the cluster, and the intercept ends with it', async (t) => {
  const port = await freePort();
  const envOut = join(work, 'cmd-env.json');
  const run = processRunner.run(
    'kubectl',
    ['telepresence', 'intercept', 'renv', '--port', `${port}:http`, '--mount=false', '--namespace', ns, '--', 'node', '-e', ONE_SHOT],
    { env: { ...cliEnv(cli), PORT_TO_USE: String(port), ENV_OUT: envOut }, timeoutMs: 300_000 },
  );
  const body = await eventually(
    async () => {
      const b = await fromCluster();
      if (!b.includes('"who":"local"')) throw new Error(`answered by the app: ${b.slice(0, 80)}`);
      return b;
    },
    { timeoutMs: 240_000, intervalMs: 1000, what: 'a request answered by the launched command' },
  );
  t.match(JSON.parse(body), { who: 'local', greeting: 'hello' }, 'the local command answered, with the remote environment');
  const result = await run;
  t.equal(result.exitCode, 0, `the CLI exits with the command's status:\n${result.stderr}`);
  const seen = JSON.parse(readFileSync(envOut, 'utf8')) as Record<string, string>;
  const want = await specEnv(await appPod());
  for (const [k, v] of Object.entries(want)) t.equal(seen[k], v, `the process sees ${k}`);
  t.match(seen['PATH'], /\/usr\/bin/, 'and keeps the local PATH');
  t.strictSame(await ourIntercepts(), [], 'the intercept was left when the command exited');
  const after = await eventually(async () => {
    const b = await fromCluster('/');
    if (b.includes('"who":"local"') || b.startsWith('ERROR')) throw new Error(b);
    return b;
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'the app answering again' });
  t.notMatch(after, /"who":"local"/, 'the app answers again');
});

t.test('-- cmd: leaving the intercept from elsewhere stops the command', async (t) => {
  const mark = join(work, 'forever-started');
  const forever = 'console.log("running"); require("node:fs").writeFileSync(process.env.MARK, "x"); setInterval(() => {}, 1000);';
  const run = processRunner.run('kubectl', ['telepresence', 'intercept', 'renv', '--port', `${await freePort()}:http`, '--mount=false', '--namespace', ns, '--', 'node', '-e', forever], {
    env: { ...cliEnv(cli), MARK: mark },
    timeoutMs: 300_000,
  });
  await eventually(() => {
    if (!existsSync(mark)) throw new Error('not started yet');
  }, { timeoutMs: 240_000, intervalMs: 500, what: 'the command running under the intercept' });
  await cli.ok(['leave', NAME]);
  const result = await run;
  t.notOk(result.timedOut, 'the CLI returned');
  t.equal(result.exitCode, 143, `the command was stopped with SIGTERM:\n${result.stderr}`);
  t.match(result.stdout, /running/, "the command's output was streamed");
});

t.test('-- a command that does not exist: a clear error before any intercept, and none is left', async (t) => {
  const r = await cli.run(['intercept', 'renv', '--port', `${await freePort()}:http`, '--mount=false', '--', 'no-such-command-tp'], 300_000);
  t.equal(r.exitCode, 2, 'a user error');
  t.match(r.stderr, /cannot run no-such-command-tp: not found on PATH/);
  t.match(r.stderr, /hint: check the command after --/);
  t.strictSame(await ourIntercepts(), [], 'nothing left intercepted');
});

// ---------------------------------------------------------------------------------------------
// Volumes

t.test('volumes: ConfigMap and emptyDir files are readable locally, and a local write reaches the pod', async (t) => {
  const mnt = join(work, 'mnt');
  const out = await cli.ok(['intercept', 'renv', '--port', `${await freePort()}:http`, '--mount', mnt], 300_000);
  t.match(out, new RegExp(`Volume mount {3}: ${mnt}`), `reports the mount:\n${out}`);
  t.ok(mountedAt(mnt), 'an sshfs mount is there');
  t.equal(readFileSync(join(mnt, 'etc/app/app.conf'), 'utf8'), 'answer=42\n', 'the ConfigMap file');
  t.equal(readFileSync(join(mnt, 'scratch/pod.txt'), 'utf8'), 'from-pod\n', 'the file the app wrote into its emptyDir');
  t.ok(existsSync(join(mnt, 'var/run/secrets/kubernetes.io/serviceaccount/token')), 'the service-account token');
  writeFileSync(join(mnt, 'scratch/local.txt'), 'from-workstation\n');
  const pod = await appPod();
  t.equal(await kube.kubectl(['-n', ns, 'exec', pod, '-c', 'app', '--', 'cat', '/scratch/local.txt']), 'from-workstation\n', 'the pod sees the local write');

  await cli.ok(['leave', NAME]);
  t.notOk(mountedAt(mnt), 'leave unmounts');
  t.notOk(existsSync(mnt), 'and removes the directory it made');
});

t.test('volumes: quit unmounts a temporary mount point', async (t) => {
  const json = await cli.json<{ mountPoint: string }>(['intercept', 'renv', '--port', `${await freePort()}:http`], 300_000);
  t.ok(json.mountPoint !== '' && mountedAt(json.mountPoint), `mounted on ${json.mountPoint}`);
  await cli.ok(['quit']);
  t.notOk(mountedAt(json.mountPoint), 'quit unmounted it');
  t.notOk(existsSync(json.mountPoint), 'and removed the temporary directory');
  await cli.ok(['connect']);
});

t.test('volumes: a killed daemon leaves a mount the next one cleans', async (t) => {
  const mnt = join(work, 'killed');
  await cli.ok(['intercept', 'renv', '--port', `${await freePort()}:http`, '--mount', mnt], 300_000);
  t.ok(mountedAt(mnt), 'mounted');
  const pids = daemonPids(cli);
  t.ok(pids.length > 0, 'the daemon runs');
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await eventually(() => {
    if (daemonPids(cli).length > 0) throw new Error('still running');
  }, { timeoutMs: 10_000, intervalMs: 100, what: 'the daemon gone' });
  // The next daemon (started by connect) cleans the dead mount at start.
  await cli.ok(['connect']);
  t.notOk(mountedAt(mnt), 'the stale mount is gone');
  // The manager expires the dead session's intercept; the same mount point works again.
  await eventually(async () => {
    if ((await ourIntercepts()).length > 0) throw new Error('the old intercept is still there');
  }, { timeoutMs: 30_000, intervalMs: 1000, what: 'the dead session expired' });
  await cli.ok(['intercept', 'renv', '--port', `${await freePort()}:http`, '--mount', mnt], 300_000);
  t.ok(mountedAt(mnt), 'the same mount point mounts again');
  await cli.ok(['leave', NAME]);
  t.notOk(mountedAt(mnt), 'and unmounts');
});

t.test('bad input: a mount point that is not an empty directory', async (t) => {
  const full = join(work, 'full');
  mkdirSync(full, { recursive: true });
  writeFileSync(join(full, 'keep.txt'), 'mine');
  const file = join(work, 'a-file');
  writeFileSync(file, 'x');
  for (const [what, path] of [['a directory with files', full], ['a file', file]] as const) {
    const r = await cli.run(['intercept', 'renv', '--port', `${await freePort()}:http`, '--mount', path]);
    t.equal(r.exitCode, 2, `${what}: a user error`);
    t.match(r.stderr, new RegExp(`cannot mount the remote volumes on ${path}: (the directory is not empty|it is not a directory)`), what);
    t.match(r.stderr, /--mount=false/, 'names the way out');
    t.notOk(mountedAt(path), 'nothing mounted');
  }
  t.equal(readFileSync(join(full, 'keep.txt'), 'utf8'), 'mine', 'the directory is untouched');
  t.strictSame(await ourIntercepts(), [], 'no intercept made');
});

t.test('bad input: sshfs missing', async (t) => {
  // A PATH with kubectl, node, the plugin and what its shim uses, but not sshfs; a daemon of
  // its own reads it.
  const bin = join(work, 'bin-without-sshfs');
  mkdirSync(bin, { recursive: true });
  for (const tool of ['kubectl', 'node', 'readlink', 'dirname']) {
    const where = (await processRunner.run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
    if (!existsSync(join(bin, tool))) symlinkSync(where, join(bin, tool));
  }
  const tp = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
  t.teardown(() => tp.dispose());
  const env = { ...cliEnv(tp), PATH: `${join(repoRoot, 'dist', 'bin')}:${bin}` };
  const r = await processRunner.run('kubectl', ['telepresence', 'intercept', 'renv', '--port', `${await freePort()}:http`, '--namespace', ns], { env, timeoutMs: 120_000 });
  t.equal(r.exitCode, 3, `a config error:\n${r.stderr}`);
  t.match(r.stderr, /sshfs is not installed/);
  t.match(r.stderr, /apt-get install sshfs.*--mount=false/);
  t.strictSame(await ourIntercepts(tp), [], 'no intercept made');
});

// ---------------------------------------------------------------------------------------------
// docker run

t.test('--docker-run: the container gets the environment, the volumes and the port', async (t) => {
  const port = await freePort();
  const run = processRunner.run(
    'kubectl',
    ['telepresence', 'intercept', 'renv', '--port', `${port}:http`, '--namespace', ns, '--docker-mount', '/remote', '--docker-run', '--', '-e', 'PORT_TO_USE=8080', '-e', 'LISTEN_HOST=0.0.0.0', ECHO_IMAGE, 'node', '-e', ONE_SHOT],
    { env: cliEnv(cli), timeoutMs: 300_000 },
  );
  const body = await eventually(
    async () => {
      const b = await fromCluster();
      if (!b.includes('"who":"local"')) throw new Error(`answered by the app: ${b.slice(0, 80)}`);
      return b;
    },
    { timeoutMs: 240_000, intervalMs: 1000, what: 'a request answered by the container' },
  );
  t.match(JSON.parse(body), { who: 'local', greeting: 'hello', root: '/remote', conf: 'answer=42\n' }, 'the container answered with the environment and the ConfigMap file');
  const result = await run;
  t.equal(result.exitCode, 0, `the CLI exits with the container's status:\n${result.stderr}`);
  t.strictSame(await ourIntercepts(), [], 'the intercept was left');
  const leftover = await processRunner.run('docker', ['ps', '-a', '--filter', `name=tp-${NAME}`, '--format', '{{.Names}}']);
  t.equal(leftover.stdout.trim(), '', 'no container left');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`telepresence-ts:`) && l.includes(`:${NAME}`));
  t.strictSame(mounts, [], 'no mount left');
});

/** The UIDs of renv's live pods, sorted: the same list means no pod was replaced. */
async function renvPodUids(): Promise<string[]> {
  const list = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', 'app=renv']);
  return list.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) => p.metadata.uid ?? '')
    .sort();
}

t.test('ingest -- cmd: the command gets the pod\'s environment, and no pod restarts when the agent is there', async (t) => {
  const before = await renvPodUids();
  const envOut = join(work, 'ingest-env.json');
  const r = await processRunner.run(
    'kubectl',
    ['telepresence', 'ingest', 'renv', '--mount=false', '--namespace', ns, '--', 'node', '-e', 'require("node:fs").writeFileSync(process.env.ENV_OUT, JSON.stringify(process.env))'],
    { env: { ...cliEnv(cli), ENV_OUT: envOut }, timeoutMs: 300_000 },
  );
  t.equal(r.exitCode, 0, `ingest: ${r.stderr}`);
  t.notMatch(r.stderr, /replacing its pods|evicted|rollout/, 'nothing is restarted');
  const got = JSON.parse(readFileSync(envOut, 'utf8')) as Record<string, string>;
  const want = await specEnv(await appPod());
  t.strictSame(Object.fromEntries(Object.keys(want).map((k) => [k, got[k]])), want, "the command sees every variable of the pod's app container, with its value");
  t.equal(got['TELEPRESENCE_CONTAINER'], 'app');
  t.strictSame(await renvPodUids(), before, 'the very same pods');
  t.strictSame(await ourIntercepts(), [], 'the ingest ended with the command');
});

t.test('ingest: the app in the cluster keeps every request; list and status say it is an ingest', async (t) => {
  const out = await cli.ok(['ingest', 'renv', '--mount=false'], 300_000);
  t.match(out, /Ingest name {4}: renv-.*-ingest\n/);
  t.match(out, /Traffic {8}: none/);
  for (let i = 0; i < 5; i++) {
    const body = await fromCluster('/');
    t.match(JSON.parse(body) as object, { host: /^renv-/ }, `request ${i + 1} is answered by the app`);
  }
  const listed = await cli.json<{ workloads?: Array<{ name: string; intercepts?: Array<{ name: string; mode: string; localPort: number }> }> }>(['list']);
  t.match(listed.workloads?.find((w) => w.name === 'renv')?.intercepts, [{ name: `${NAME}-ingest`, mode: 'ingest', localPort: 0 }], 'list names the mode');
  t.match(await cli.ok(['status']), new RegExp(`${NAME}-ingest: renv environment and volumes, no traffic \\(ingest\\)`), 'status too');
  await cli.ok(['leave', `${NAME}-ingest`]);
  t.strictSame(await ourIntercepts(), []);
});

// ---------------------------------------------------------------------------------------------
// helpers that need the CLI instance

/** The environment `cli` runs kubectl telepresence with (its own daemon socket and PATH). */
function cliEnv(tp: TelepresenceCli): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${join(repoRoot, 'dist', 'bin')}:${process.env['PATH'] ?? ''}`,
    KUBECONFIG: cluster.kubeconfig,
    XDG_RUNTIME_DIR: tp.runtimeDir,
    XDG_CACHE_HOME: join(tp.runtimeDir, 'cache'),
  };
}

/** The pids of `tp`'s daemon: processes whose environment names its runtime folder. */
function daemonPids(tp: TelepresenceCli): number[] {
  const pids: number[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (cmd.includes('daemon-foreground') && env.split('\0').includes(`XDG_RUNTIME_DIR=${tp.runtimeDir}`)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
