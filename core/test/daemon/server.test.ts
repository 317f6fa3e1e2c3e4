import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ConnectionState } from '@telepresence-ts/proto/daemon/v1';
import { GrpcDaemonClient, openDaemon, pingDaemon } from '../../src/daemon-client.js';
import { runDaemon } from '../../src/daemon/run.js';
import { TpError } from '../../src/errors.js';
import { daemonSetup, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

/** The daemon process's composition (runDaemon) on a Unix socket in a temp folder, with a fake manager. */
async function runningDaemon(t: Test, managerVersion = '1.2.0') {
  const dir = mkdtempSync(join(tmpdir(), 'tp-daemon-test-'));
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  const s = await daemonSetup();
  s.manager.version = managerVersion;
  const socketPath = join(dir, 'run', 'daemon.sock');
  const stop = new AbortController();
  const done = runDaemon({
    socketPath,
    logPath: join(dir, 'cache', 'daemon.log'),
    version: '1.2.3',
    kubeFactory: async () => s.kube,
    connector: s.connector,
    signal: stop.signal,
  });
  await eventually(() => pingDaemon(socketPath), 5_000, 'the daemon socket');
  t.teardown(async () => {
    stop.abort();
    await done;
    s.manager.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socketPath, manager: s.manager, done, dir };
}

t.test('the CLI side talks to the daemon over its Unix socket', async (t) => {
  const d = await runningDaemon(t);
  const client = new GrpcDaemonClient(d.socketPath);
  t.teardown(() => client.close());
  t.strictSame(await client.version(), { daemonVersion: '1.2.3', managerVersion: '', agentImage: '' });
  t.equal((await client.status()).state, ConnectionState.DISCONNECTED);
  const status = await client.connect({ kube: { kubeconfig: '', context: '', namespace: '', kubeconfigEnv: '' }, managerNamespace: '', product: 'cli', outbound: undefined });
  t.equal(status.state, ConnectionState.CONNECTED);
  t.equal(status.managerNamespace, 'tp-system', 'empty means the default manager namespace');
  t.strictSame(await client.version(), { daemonVersion: '1.2.3', managerVersion: '1.2.0', agentImage: 'tp-local/traffic-agent:1.2.0' }, "connected: the manager's version and the agent image it injects");
  const progress: string[] = [];
  const info = await client.intercept(spec('echo', 8080), (l) => progress.push(l));
  t.strictSame(progress, ['preparing deployment/echo'], 'progress lines stream through');
  t.equal(info.spec?.name, 'echo-default');
  const err = await client.intercept(spec('other', 8080), () => undefined).catch((e: unknown) => e);
  t.ok(err instanceof TpError, 'errors are rebuilt as TpError');
  t.match(err, { category: 'user', code: 'local-port-in-use', hint: /leave echo-default/ });
  await t.rejects(client.leave('nope'), { code: 'unknown-intercept' });
  await client.leave('echo-default');

  const snaps: number[] = [];
  const stopWatching = client.watchState((s) => snaps.push(s.connection?.state ?? 0), () => undefined);
  await eventually(() => snaps.length > 0, 5_000, 'a state snapshot');
  stopWatching();
  t.equal(snaps[0], ConnectionState.CONNECTED);
});

t.test('version-mismatch crosses the socket with its hint', async (t) => {
  const d = await runningDaemon(t, '9.9.0');
  const client = new GrpcDaemonClient(d.socketPath);
  t.teardown(() => client.close());
  const err = await client.connect({ kube: undefined, managerNamespace: '', product: 'cli', outbound: undefined }).catch((e: unknown) => e);
  t.match(err, { category: 'config', code: 'version-mismatch', hint: /kubectl telepresence install/ });
});

t.test('quit departs and stops the daemon; the socket goes away', async (t) => {
  const d = await runningDaemon(t);
  const client = new GrpcDaemonClient(d.socketPath);
  await client.connect({ kube: undefined, managerNamespace: '', product: 'cli', outbound: undefined });
  await client.quit();
  client.close();
  await d.done;
  t.ok(d.manager.calls.includes('Depart'));
  t.equal(await pingDaemon(d.socketPath), false);
  t.equal(await openDaemon({ socketPath: d.socketPath }), undefined, 'without start, no daemon is no client');
});

t.test('a second daemon on the same socket is refused', async (t) => {
  const d = await runningDaemon(t);
  await t.rejects(
    runDaemon({ socketPath: d.socketPath, logPath: join(d.dir, 'x.log'), version: '1.2.3', kubeFactory: async () => undefined as never }),
    { code: 'daemon-running' },
  );
});

t.test('openDaemon starts one when asked and polls until it answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-daemon-test-'));
  const socketPath = join(dir, 'daemon.sock');
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  const stop = new AbortController();
  let done: Promise<void> | undefined;
  const client = await openDaemon({
    socketPath,
    start: () => {
      done = runDaemon({ socketPath, logPath: join(dir, 'daemon.log'), version: '1.2.3', kubeFactory: async () => undefined as never, signal: stop.signal });
    },
  });
  t.ok(client !== undefined);
  t.equal((await client?.version())?.daemonVersion, '1.2.3');
  client?.close();
  stop.abort();
  await done;
  rmSync(dir, { recursive: true, force: true });
});

t.test('openDaemon gives up with daemon-start-failed when nothing comes up', async (t) => {
  let now = 0;
  const err = await openDaemon({
    socketPath: '/nonexistent/daemon.sock',
    start: () => undefined,
    logPath: '/tmp/x.log',
    clock: { now: () => now, sleep: async (ms) => void (now += ms) },
    timeoutMs: 1_000,
  }).catch((e: unknown) => e);
  t.match(err, { category: 'internal', code: 'daemon-start-failed', hint: 'see /tmp/x.log' });
});
