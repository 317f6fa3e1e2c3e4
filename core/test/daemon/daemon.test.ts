import net from 'node:net';
import t from 'tap';
import { ConnectionState } from '@telepresence-ts/proto/daemon/v1';
import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { TpError } from '../../src/errors.js';
import type { OutboundPorts } from '../../src/outbound/outbound.js';
import { CONNECT_ARGS, daemonSetup, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

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
