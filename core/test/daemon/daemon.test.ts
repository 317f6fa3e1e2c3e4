import net from 'node:net';
import t from 'tap';
import { ConnectionState } from '@telepresence-ts/proto/daemon/v1';
import { InterceptDisposition, type TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkManagerVersion, checkWritableFile, majorMinor } from '../../src/daemon/daemon.js';
import { TpError } from '../../src/errors.js';
import type { OutboundPorts } from '../../src/outbound/outbound.js';
import { CONNECT_ARGS, daemonSetup, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

t.test('majorMinor and the version check', (t) => {
  t.equal(majorMinor('1.2.3'), '1.2');
  t.equal(majorMinor('v0.1.0-dev'), '0.1');
  t.doesNotThrow(() => checkManagerVersion('1.2.3', '1.2.0'));
  t.throws(() => checkManagerVersion('1.2.3', '1.3.0'), { code: 'version-mismatch', category: 'config' });
  t.end();
});

t.test('connect arrives, watches, and a second connect with the same flags reuses the session', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  const status = await s.daemon.connect(CONNECT_ARGS);
  t.equal(status.state, ConnectionState.CONNECTED);
  t.equal(status.context, 'kind-tp');
  t.equal(status.managerVersion, '1.2.0');
  t.equal(status.sessionId, 'sess-1');
  await eventually(() => ['WatchAgents', 'WatchIntercepts', 'WatchDials'].every((c) => s.manager.calls.includes(c)), 5_000, 'watches');
  const again = await s.daemon.connect(CONNECT_ARGS);
  t.equal(again.sessionId, 'sess-1');
  t.equal(s.manager.calls.filter((c) => c === 'ArriveAsClient').length, 1);
  t.equal(again.outbound?.state, 'off', 'connected without outbound access: its status says off');
  await s.daemon.disconnect();
  t.equal(s.daemon.status().outbound, undefined, 'not connected: no outbound status at all');
});

t.test('the state says connected only once outbound access is up', async (t) => {
  let release = (): void => undefined;
  let asked = (): void => undefined;
  const clusterInfoAsked = new Promise<void>((resolve) => (asked = resolve));
  const ports: OutboundPorts = {
    getClusterInfo: () =>
      new Promise((resolve) => {
        release = () => resolve({ podSubnets: ['10.244.0.0/16'], serviceSubnets: ['10.96.0.0/16'], clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' });
        asked();
      }),
    localRoutes: async () => [{ cidr: '0.0.0.0/0', device: 'eth0' }],
    startFlowServer: async () => ({ socketPath: '/run/flows.sock', stats: () => ({ tcpFlows: 0, udpFlows: 0, activeFlows: 0 }), close: async () => undefined }),
    startDnsServer: async () => ({ port: () => 5353, upstreamPort: () => 40000, stats: () => ({ clusterQueries: 0, upstreamQueries: 0 }), close: async () => undefined }),
    acquireNetwork: async (config) => ({ ready: { device: 'tpts0', routes: config.subnets, dnsRedirected: [] }, release: async () => undefined }),
    log: () => undefined,
  };
  const s = await daemonSetup('1.2.3', { outbound: () => ports });
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  const seen: { state: ConnectionState; outbound: string | undefined }[] = [];
  s.daemon.watchState((snap) => seen.push({ state: snap.connection?.state ?? ConnectionState.DISCONNECTED, outbound: snap.connection?.outbound?.state }));
  const connected = s.daemon.connect({ ...CONNECT_ARGS, outbound: { disabled: false, alsoProxy: [], neverProxy: [] } });
  await clusterInfoAsked;
  // The session's watches have answered by now, each telling the watchers.
  await eventually(() => ['WatchAgents', 'WatchIntercepts'].every((c) => s.manager.calls.includes(c)), 5_000, 'watches');
  t.equal(s.daemon.status().state, ConnectionState.CONNECTING, 'the session is open but outbound access is coming up: still connecting');
  release();
  const status = await connected;
  t.equal(status.state, ConnectionState.CONNECTED);
  t.equal(status.outbound?.state, 'up');
  const early = seen.filter((e) => e.state === ConnectionState.CONNECTED && e.outbound !== 'up');
  t.strictSame(early, [], 'no watcher was told "connected" before outbound access was up');
});

t.test('checkWritableFile refuses what could not be written, naming the flag and the fix', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tp-envfile-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const readOnly = join(root, 'ro.env');
  writeFileSync(readOnly, '');
  chmodSync(readOnly, 0o400);
  const cases: { name: string; path: string; message?: RegExp }[] = [
    { name: 'a new file in a writable folder', path: join(root, 'new.env') },
    { name: 'a relative path', path: 'web.env', message: /the path is not absolute/ },
    { name: 'a folder that does not exist', path: join(root, 'nope', 'web.env'), message: /the folder .*nope does not exist/ },
    { name: 'a folder', path: root, message: /it is a folder/ },
    { name: 'a file as the folder', path: join(readOnly, 'x.env'), message: /is not a folder/ },
  ];
  // root reads and writes anything: the read-only case means something only for other users.
  if (process.getuid?.() !== 0) cases.push({ name: 'a read-only file', path: readOnly, message: /the file is read-only/ });
  for (const c of cases) {
    t.test(c.name, async (t) => {
      if (c.message === undefined) t.doesNotThrow(() => checkWritableFile(c.path, '--env-file'));
      else t.throws(() => checkWritableFile(c.path, '--env-file'), { code: 'env-file-unwritable', category: 'user', message: c.message });
    });
  }
});

t.test('an --env-file that cannot be written is refused before the traffic-manager is asked anything', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await t.rejects(s.daemon.intercept(spec('echo', 8080), () => undefined, { envFile: '/nonexistent-folder/web.env' }), {
    code: 'env-file-unwritable',
    message: /cannot write --env-file \/nonexistent-folder\/web.env: the folder \/nonexistent-folder does not exist/,
  });
  t.notOk(s.manager.calls.includes('PrepareIntercept'), 'nothing prepared');
});

t.test('a manager of another major.minor is refused with version-mismatch', async (t) => {
  const s = await daemonSetup('2.0.0');
  t.teardown(() => s.manager.stop());
  const err = await s.daemon.connect(CONNECT_ARGS).catch((e: unknown) => e);
  t.ok(err instanceof TpError);
  t.match(err, { code: 'version-mismatch', category: 'config' });
  t.match((err as TpError).message, /v2\.0\.0.*v1\.2\.0/);
  t.match((err as TpError).hint, /kubectl telepresence install/);
  t.equal(s.daemon.status().state, ConnectionState.DISCONNECTED);
  t.notOk(s.manager.calls.includes('ArriveAsClient'), 'no session is opened');
});

t.test('commands that need a connection say so', async (t) => {
  const s = await daemonSetup();
  t.teardown(() => s.manager.stop());
  await t.rejects(s.daemon.list(''), { code: 'not-connected', category: 'user' });
  await t.rejects(s.daemon.intercept(spec('echo', 8080), () => undefined), { code: 'not-connected' });
});

t.test('intercept: prepare progress, create, the agent activates it, list and leave', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  s.kube.add({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: 'default' }, spec: { replicas: 1 }, status: { readyReplicas: 1 } } as never);
  s.kube.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace: 'default' }, data: { echo: '{}' } } as never);
  await s.daemon.connect(CONNECT_ARGS);
  const states: number[] = [];
  s.daemon.watchState((snap) => states.push(snap.intercepts.length));

  const progress: string[] = [];
  const info = await s.daemon.intercept(spec('echo', 8080, { servicePort: 'http' }), (l) => progress.push(l));
  t.strictSame(progress, ['preparing deployment/echo']);
  t.equal(info.id, 'sess-1:echo-default', 'name defaults to <workload>-<namespace>');
  t.equal(info.spec?.namespace, 'default', 'namespace defaults to the connection');
  t.equal(info.spec?.servicePort, 'http');
  await eventually(() => s.daemon.snapshot().intercepts[0]?.disposition === InterceptDisposition.ACTIVE, 5_000, 'ACTIVE');
  t.ok(states.includes(1), 'WatchState saw the intercept');

  const list = await s.daemon.list('');
  t.equal(list.workloads.length, 1);
  t.match(list.workloads[0], { name: 'echo', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'configured' });
  t.equal(list.workloads[0]?.intercepts[0]?.id, 'sess-1:echo-default');

  await t.rejects(s.daemon.intercept(spec('other', 8080), () => undefined), { code: 'local-port-in-use', category: 'user' }, 'one local port, one intercept');
  await t.rejects(s.daemon.intercept(spec('echo', 8081), () => undefined), { code: 'intercept-exists' });
  await t.rejects(s.daemon.intercept(spec('echo', 0), () => undefined), { code: 'bad-port' });
  const before = s.manager.calls.length;
  for (const name of ['a/b', '../../etc/x', 'Upper', '-dash', 'dash-', 'x'.repeat(64), 'dot.ted']) {
    await t.rejects(s.daemon.intercept(spec('echo', 9100, { name }), () => undefined), { code: 'bad-intercept-name', category: 'user' }, `--name ${name} is refused`);
  }
  t.equal(s.manager.calls.length, before, 'before anything was asked of the manager');

  await t.rejects(s.daemon.leave('nope'), { code: 'unknown-intercept', category: 'user' });
  await s.daemon.leave('echo-default');
  t.equal(s.daemon.snapshot().intercepts.length, 0);
  t.equal(s.manager.intercepts.size, 0, 'removed on the manager');
});

t.test("the manager's TpErrors reach the caller with category, code and hint", async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  s.manager.prepareErrors.set('ghost', new TpError('user', 'unknown-workload', 'no workload named ghost in default', { hint: 'run `kubectl telepresence list`' }));
  await s.daemon.connect(CONNECT_ARGS);
  const err = await s.daemon.intercept(spec('ghost', 8080), () => undefined).catch((e: unknown) => e);
  t.match(err, { category: 'user', code: 'unknown-workload', message: 'no workload named ghost in default', hint: 'run `kubectl telepresence list`' });
  // The failed intercept released its port.
  const ok = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  t.equal(ok.spec?.localPort, 8080);
});

t.test('uninstallAgents resolves the namespace', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  t.strictSame((await s.daemon.uninstallAgents({ namespace: '', workloadNames: ['echo'], all: false, allNamespaces: false })).removed, ['default/echo']);
  t.strictSame((await s.daemon.uninstallAgents({ namespace: '', workloadNames: [], all: true, allNamespaces: true })).removed, ['*/all']);
  await t.rejects(s.daemon.uninstallAgents({ namespace: '', workloadNames: [], all: false, allNamespaces: false }), { code: 'bad-usage' });
});

t.test('a session the manager lost arrives again under its id and creates its intercepts again', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  const before = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  const prepares = s.manager.calls.filter((c) => c === 'PrepareIntercept').length;
  // As a restarted manager: no session, no intercepts.
  s.manager.expireSessions();
  await eventually(() => s.manager.calls.filter((c) => c === 'PrepareIntercept').length > prepares && s.daemon.status().error === '' && s.daemon.snapshot().intercepts.length === 1, 10_000, 'the intercept made again');
  t.equal(s.daemon.status().sessionId, 'sess-1', 'the same session id');
  t.equal(s.daemon.snapshot().intercepts[0]?.id, before.id, 'the intercept keeps its id');
  t.strictSame(s.daemon.status().lostIntercepts, []);
});

t.test('an intercept that cannot be made again is reported lost, with the reason', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  await s.daemon.intercept(spec('gone', 8081), () => undefined);
  s.manager.prepareErrors.set('gone', new TpError('user', 'workload-not-found', 'deployment gone not found in namespace default', { hint: 'check the name' }));
  s.manager.expireSessions();
  await eventually(() => s.daemon.status().lostIntercepts.length === 1, 10_000, 'a lost intercept');
  t.strictSame(s.daemon.status().lostIntercepts, [{ name: 'gone-default', reason: 'deployment gone not found in namespace default (check the name)' }]);
  t.strictSame(s.daemon.snapshot().intercepts.map((ii) => ii.spec?.name), ['echo-default'], 'the other one is back');
  t.match(s.daemon.status().error, /intercepts lost after the traffic-manager restarted: gone-default/);
  await s.daemon.intercept(spec('gone', 8081, { name: 'gone-default' }), () => undefined).catch(() => undefined);
  t.strictSame(s.daemon.status().lostIntercepts, [], 'intercepting the same name again clears the loss');
});

t.test('shutdown departs', async (t) => {
  const s = await daemonSetup();
  t.teardown(() => s.manager.stop());
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.shutdown();
  t.ok(s.manager.calls.includes('Depart'));
  t.equal(s.daemon.status().state, ConnectionState.DISCONNECTED);
  t.equal(s.manager.sessions.size, 0);
});

/** A TCP echo server that supports half-close: it ends its side once ours has ended. */
async function echoServer(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function portOf(server: net.Server): number {
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

/** Collects a tunnel's data until the daemon's close, and whether the stream then ended. */
function collect(call: NodeJS.EventEmitter): Promise<{ data: Buffer; close: TunnelMessage['close'] }> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    call.on('data', (msg: TunnelMessage) => {
      if (msg.data !== undefined) {
        chunks.push(msg.data);
      } else if (msg.close !== undefined) {
        resolve({ data: Buffer.concat(chunks), close: msg.close });
      }
    });
  });
}

t.test('a dial becomes a tunnel: bytes flow both ways, with half-close', async (t) => {
  const s = await daemonSetup();
  const echo = await echoServer();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
    echo.close();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.manager.waitForDialStream();
  const call = await s.manager.dialAndOpen('conn-1', portOf(echo));
  t.ok(s.manager.calls.includes('Tunnel conn-1 from sess-1'), 'opened with our session and the connection id');
  const received = collect(call);
  // 1 MiB in 16 KiB messages: more than the socket and HTTP/2 windows hold, so backpressure is exercised.
  const payload = Buffer.alloc(1 << 20);
  for (let i = 0; i < payload.length; i++) {
    payload[i] = i % 251;
  }
  for (let off = 0; off < payload.length; off += 16 << 10) {
    call.write({ data: payload.subarray(off, off + (16 << 10)) });
  }
  // Half-close: we are done sending; the echo server answers everything, then ends too.
  call.write({ close: { error: '' } });
  const { data, close } = await received;
  t.equal(data.length, payload.length, 'every byte came back');
  t.ok(data.equals(payload), 'in order');
  t.equal(close?.error, '', 'a normal close');
  await new Promise<void>((resolve) => {
    call.on('end', resolve);
    call.end();
  });
});

t.test('a dial to a port nobody listens on answers open then close with the error', async (t) => {
  const s = await daemonSetup();
  const unused = await echoServer();
  const port = portOf(unused);
  await new Promise<void>((resolve) => unused.close(() => resolve()));
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.manager.waitForDialStream();
  const call = await s.manager.dialAndOpen('conn-2', port);
  const { data, close } = await collect(call);
  t.equal(data.length, 0);
  t.match(close?.error, /^nothing listens on port \d+ of this host \(tried 127\.0\.0\.1 and ::1\)$/, 'the error says nothing listens');
  call.end();
});

t.test('an intercept the manager removes disappears from the daemon too', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  await eventually(() => s.daemon.snapshot().intercepts[0]?.disposition === InterceptDisposition.ACTIVE, 5_000, 'ACTIVE');
  s.manager.removeAll();
  await eventually(() => s.daemon.snapshot().intercepts.length === 0, 5_000, 'the intercept to go');
  const again = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  t.equal(again.spec?.localPort, 8080, 'its local port is free again');
});

t.test('when the manager stops answering, the daemon reconnects and keeps a session that is still alive', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  // Heartbeats fail (as through a dead port-forward) until the connector is asked again.
  let broken = true;
  s.manager.failRemain = () => broken;
  const connectsBefore = s.connects;
  await eventually(() => s.connects > connectsBefore, 10_000, 'a reconnect');
  broken = false;
  await eventually(() => s.daemon.status().error === '', 10_000, 'a healthy session');
  t.equal(s.daemon.status().sessionId, 'sess-1', 'the same session');
  t.equal(s.daemon.snapshot().intercepts.length, 1, 'its intercepts kept');
});
