import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { GrpcNetworkClient, connectNetworkDaemon, pingNetworkDaemon, startNetworkDaemonCommand } from '../../src/network/client.js';
import { runNetworkDaemon } from '../../src/network/run.js';
import { TpError } from '../../src/errors.js';
import { eventually } from '../fixtures/eventually.js';
import { FakeSystem, fakeSpawner } from './fixtures/fakes.js';

/** runNetworkDaemon on a socket in a temp folder, with the fake system and engine, and a real flow socket. */
async function runningNetworkDaemon(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'tp-netd-test-'));
  const socketPath = join(dir, 'run', 'network.sock');
  const flowSocket = join(dir, 'flows.sock');
  const flows = createServer();
  await new Promise<void>((resolve) => flows.listen(flowSocket, resolve));
  const system = new FakeSystem();
  const engine = fakeSpawner(system);
  const stop = new AbortController();
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const done = runNetworkDaemon({
    socketPath,
    logPath: join(dir, 'log', 'network-daemon.log'),
    version: '1.2.3',
    owner,
    enginePath: '/opt/tp-netstack',
    signal: stop.signal,
    system,
    spawnEngine: engine.spawn,
    log: () => undefined,
  });
  await eventually(() => pingNetworkDaemon(socketPath), 5_000, 'the network daemon socket');
  t.teardown(async () => {
    stop.abort();
    await done;
    flows.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = { subnets: ['10.96.0.0/12'], flowSocket, dnsPort: 5353, dnsUpstreamPort: 40000, mtu: 0 };
  return { socketPath, system, engine, done, config, owner, dir };
}

t.test('over the socket: Version, Outbound up, and cancelling the call takes it down', async (t) => {
  const d = await runningNetworkDaemon(t);
  const st = statSync(d.socketPath);
  t.equal(st.mode & 0o777, 0o600, 'only the owner (and root) may open the socket');
  t.equal(st.uid, d.owner.uid);
  const client = new GrpcNetworkClient(d.socketPath);
  t.teardown(() => client.close());
  t.strictSame(await client.version(), { version: '1.2.3', ownerUid: d.owner.uid });
  const progress: string[] = [];
  const session = await client.outbound(d.config, (l) => progress.push(l));
  t.equal(session.ready.device, 'tpts0');
  t.strictSame(session.ready.routes, ['10.96.0.0/12']);
  t.ok(progress.includes('creating network device tpts0'), 'progress lines stream through');
  t.strictSame(d.system.leftovers(), ['tpts0', 'dns']);
  session.stop();
  t.equal(await session.ended, undefined, 'a stop ends the session without error');
  await eventually(() => d.system.leftovers().length === 0, 5_000, 'the teardown');
  t.ok(d.engine.engines[0]?.stopped, 'the engine was stopped');
});

t.test('errors cross the socket as TpError: bad config, busy, and an engine that dies later', async (t) => {
  const d = await runningNetworkDaemon(t);
  const client = new GrpcNetworkClient(d.socketPath);
  t.teardown(() => client.close());
  await t.rejects(client.outbound({ ...d.config, subnets: ['nope'] }, () => undefined), { category: 'user', code: 'bad-outbound-config' });
  const session = await client.outbound(d.config, () => undefined);
  const err = await client.outbound(d.config, () => undefined).catch((e: unknown) => e);
  t.ok(err instanceof TpError);
  t.match(err, { category: 'user', code: 'outbound-busy', hint: /quit/ });
  d.engine.engines[0]?.die();
  t.match(await session.ended, { category: 'internal', code: 'engine-exited' });
  t.strictSame(d.system.leftovers(), []);
});

t.test('Quit takes access down, ends the Outbound call with OK and stops the daemon', async (t) => {
  const d = await runningNetworkDaemon(t);
  const client = new GrpcNetworkClient(d.socketPath);
  const session = await client.outbound(d.config, () => undefined);
  await client.quit();
  t.equal(await session.ended, undefined);
  client.close();
  await d.done;
  t.strictSame(d.system.leftovers(), []);
  t.equal(await pingNetworkDaemon(d.socketPath), false, 'the socket is gone');
});

t.test('a second daemon on the same socket is refused', async (t) => {
  const d = await runningNetworkDaemon(t);
  await t.rejects(
    runNetworkDaemon({ socketPath: d.socketPath, logPath: join(d.dir, 'log', 'x.log'), version: 'x', owner: d.owner, enginePath: '/x', system: new FakeSystem(), log: () => undefined }),
    { code: 'network-daemon-running' },
  );
});

t.test('connectNetworkDaemon: without root and without a daemon, needs-root says what to run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-netd-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'network.sock');
  let launched = false;
  const err = await connectNetworkDaemon({ cliPath: '/opt/tp/dist/kubectl-telepresence.js', socketPath, ownerUid: 1000, euid: 1000, launch: () => (launched = true) }).catch((e: unknown) => e);
  t.match(err, {
    category: 'config',
    code: 'needs-root',
    message: 'outbound access needs root for its network device, routes and DNS redirect',
  });
  t.match((err as TpError).hint, `sudo env TELEPRESENCE_NETWORK_SOCKET=${socketPath} `);
  t.match((err as TpError).hint, '/opt/tp/dist/kubectl-telepresence.js network-daemon --owner 1000');
  t.match((err as TpError).hint, 'connect --outbound=false');
  t.equal(launched, false);
});

t.test('startNetworkDaemonCommand names node only when sudo would not find it', async (t) => {
  t.equal(startNetworkDaemonCommand('/opt/tp/cli.js', 1000, '/run/telepresence-ts/network.sock', '/run/telepresence-ts/network.sock', '/usr/bin/node'), 'sudo /opt/tp/cli.js network-daemon --owner 1000');
  t.equal(
    startNetworkDaemonCommand('/opt/tp/cli.js', 1000, '/run/telepresence-ts/network.sock', '/run/telepresence-ts/network.sock', '/home/a/.nvm/versions/node/v20/bin/node'),
    'sudo /home/a/.nvm/versions/node/v20/bin/node /opt/tp/cli.js network-daemon --owner 1000',
  );
});

t.test('connectNetworkDaemon: as root, starts the daemon and waits for it; a daemon that never comes fails in time', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-netd-test-'));
  const socketPath = join(dir, 'network.sock');
  const stop = new AbortController();
  let done: Promise<void> | undefined;
  t.teardown(async () => {
    stop.abort();
    await done;
    rmSync(dir, { recursive: true, force: true });
  });
  const launch = (): void => {
    done = runNetworkDaemon({ socketPath, logPath: join(dir, 'l.log'), version: '9.9.9', owner: { uid: 4321, gid: 4321 }, enginePath: '/x', signal: stop.signal, system: new FakeSystem(), log: () => undefined });
  };
  const api = await connectNetworkDaemon({ cliPath: '/cli.js', socketPath, euid: 0, ownerUid: 4321, launch });
  t.teardown(() => api.close());
  t.strictSame(await api.version(), { version: '9.9.9', ownerUid: 4321 });

  let now = 0;
  const clock = { now: () => now, sleep: async (ms: number) => void (now += ms) };
  await t.rejects(connectNetworkDaemon({ cliPath: '/cli.js', socketPath: join(dir, 'never.sock'), euid: 0, launch: () => undefined, clock, logPath: '/root/.cache/x.log' }), {
    code: 'network-daemon-start-failed',
    hint: /\/root\/.cache\/x.log/,
  });
  t.equal(now, 3_000, 'gave up after three seconds');
});
