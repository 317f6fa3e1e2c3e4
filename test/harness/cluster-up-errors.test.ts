/**
 * `cluster:up` on a machine that lacks something: each case must name the missing piece and
 * the fix, exit non-zero, and leave nothing of a cluster behind (checked by check-clean.sh).
 * These run as root with no cluster up; scripts/test.sh runs them before it starts one.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { processRunner, type RunResult } from '../src/process-runner.js';

const REPO = resolve(import.meta.dirname, '../..');
const SCRIPTS = join(REPO, 'test/cluster');

/** A PATH that has every command of the current PATH except `hidden`. */
function pathWithout(hidden: readonly string[]): { path: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tp-path-'));
  for (const entry of (process.env['PATH'] ?? '').split(':')) {
    if (!entry || !existsSync(entry)) continue;
    for (const name of readdirSync(entry)) {
      if (hidden.includes(name) || existsSync(join(dir, name))) continue;
      try {
        if (statSync(join(entry, name)).isFile()) symlinkSync(join(entry, name), join(dir, name));
      } catch {
        // A dangling link in a PATH folder is not ours to judge.
      }
    }
  }
  return { path: dir, dir };
}

async function script(name: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<RunResult> {
  return processRunner.run('bash', [join(SCRIPTS, name), ...args], {
    env: { ...process.env, ...env },
    timeoutMs: 120_000,
  });
}

async function assertClean(t: Test): Promise<void> {
  const check = await script('check-clean.sh');
  t.equal(check.exitCode, 0, `nothing of a cluster remains:\n${check.stdout}`);
}

/** Asserts the harness's two-line error shape: `error: <what>` then `hint:  <fix>`. */
function assertError(t: Test, result: RunResult, what: RegExp, hint: RegExp): void {
  t.equal(result.exitCode, 1, 'exits 1');
  t.match(result.stderr, new RegExp(`^error: .*${what.source}`, 'm'), 'names the problem');
  t.match(result.stderr, new RegExp(`^hint: .*${hint.source}`, 'm'), 'says how to fix it');
}

const running = await script('check-clean.sh');
if (process.getuid?.() !== 0) {
  t.plan(0, 'the local cluster harness needs root (it creates interfaces and iptables rules)');
} else if (running.exitCode !== 0) {
  t.plan(0, `a cluster is up; these cases check \`up\` on a machine without one (npm run cluster:down first):\n${running.stdout}`);
} else {
  t.test('no Go and no built Kubernetes binaries', async (t) => {
    const { path, dir } = pathWithout(['go']);
    const empty = mkdtempSync(join(tmpdir(), 'tp-k8sbin-'));
    t.teardown(() => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    });
    const result = await script('up.sh', { PATH: path, TP_K8S_BIN: empty });
    assertError(t, result, /Go is not installed/, /install Go/);
    await assertClean(t);
  });

  t.test('a Debian package is missing', async (t) => {
    const { path, dir } = pathWithout(['etcd']);
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const result = await script('up.sh', { PATH: path });
    assertError(t, result, /missing Debian packages: etcd-server/, /apt-get install -y etcd-server/);
    await assertClean(t);
  });

  t.test('a port the cluster needs is taken', async (t) => {
    const server: Server = createServer();
    await new Promise<void>((ok) => server.listen(2379, '127.0.0.1', ok));
    t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
    const result = await script('up.sh');
    assertError(t, result, /ports the cluster needs are already in use: 2379 \(etcd; used by node\)/, /stop what listens there/);
    await assertClean(t);
  });

  t.test('a stale cluster was not shut down', async (t) => {
    // What a killed `up` can leave: the sink interface.
    const made = await processRunner.run('ip', ['link', 'add', 'tp-sink0', 'type', 'bridge']);
    t.equal(made.exitCode, 0, 'leftover interface created');
    const result = await script('up.sh');
    assertError(t, result, /a previous cluster was not shut down cleanly/, /npm run cluster:down/);
    const down = await script('down.sh');
    t.equal(down.exitCode, 0, 'down removes the leftover');
    t.match(down.stderr, /interface tp-sink0/, 'down says what it removed');
    await assertClean(t);
  });

  t.test('an unknown cluster back end', async (t) => {
    const result = await script('up.sh', { TP_CLUSTER: 'minikube' });
    assertError(t, result, /unknown TP_CLUSTER=minikube/, /TP_CLUSTER=local \(default\) or TP_CLUSTER=kind/);
    await assertClean(t);
  });

  // Without kind on PATH the kind back end builds it (and everything else): a bad setting of its
  // own is what it refuses before starting anything.
  t.test('kind asked for with a number of nodes that is not one', async (t) => {
    const result = await script('up.sh', { TP_CLUSTER: 'kind', TP_KIND_NODES: 'two' });
    assertError(t, result, /TP_KIND_NODES=two is not a number of nodes/, /use TP_KIND_NODES=1 or 2/);
    await assertClean(t);
  });

  t.test('loading an image with no cluster up', async (t) => {
    const result = await script('load-image.sh', {}, ['tp-local/echo:1']);
    assertError(t, result, /the local cluster is not running/, /npm run cluster:up/);
  });

  t.test('loading without naming an image', async (t) => {
    const result = await script('load-image.sh');
    assertError(t, result, /no image given/, /usage: npm run cluster:load-image -- IMAGE/);
  });
}
