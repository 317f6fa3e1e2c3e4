import { Server } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { InterceptDisposition, type InterceptInfo, type TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import type { TpError } from '../../src/errors.js';
import { GrpcDaemonClient } from '../../src/daemon-client.js';
import { addDaemonToServer, bindServer, closeServer } from '../../src/daemon/server.js';
import { resolveEngagement } from '../../src/daemon/traffic-watch.js';
import { CONNECT_ARGS, daemonSetup, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

function info(id: string, name: string, namespace: string, clientName = 'bob@desk'): InterceptInfo {
  return {
    id,
    spec: { ...spec('web', 8080), name, namespace },
    target: undefined,
    clientSessionId: id.split(':')[0] ?? '',
    clientName,
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
}

function event(path: string): TrafficEvent {
  return {
    interceptId: '',
    kind: 'http',
    startedAt: 1,
    durationMs: 1,
    podName: 'web-1',
    source: '10.0.0.5:1',
    answeredBy: 'app',
    bytesIn: 0,
    bytesOut: 0,
    method: 'GET',
    path,
    status: 200,
    requestHeaders: [],
    responseHeaders: [],
    requestBody: Buffer.alloc(0),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
  };
}

t.test('resolveEngagement: ours first, then another client’s by name (and namespace)', async (t) => {
  const mine = info('me:web', 'web', 'default', 'alice@laptop');
  const bobs = info('bob:web', 'web', 'default');
  const bobsStaging = info('bob:api', 'api', 'staging');
  const carols = info('carol:api', 'api', 'prod', 'carol@box');
  const all = [mine, bobs, bobsStaging, carols];
  t.equal(resolveEngagement('web', '', [mine], all), mine, 'our own wins over another’s of the same name');
  t.equal(resolveEngagement('api', 'staging', [mine], all), bobsStaging);
  t.throws(() => resolveEngagement('api', '', [mine], all), { code: 'ambiguous-intercept', message: /bob@desk in staging, carol@box in prod/, hint: /--namespace/ });
  t.throws(() => resolveEngagement('nope', '', [mine], all), { code: 'unknown-intercept', category: 'user', hint: /the known ones: web, api/ });
  t.throws(() => resolveEngagement('nope', '', [], []), { code: 'unknown-intercept', hint: /there is none now/ });
});

t.test('the daemon relays the manager’s stream for our intercept and for another client’s', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  s.manager.trafficEvents = [event('/a'), event('/b')];
  const got: string[] = [];
  let ended: TpError | undefined | 'open' = 'open';
  s.daemon.watchTraffic({ name: 'echo-default', namespace: '', bodyBytes: 64 }, { next: (e) => got.push(e.path), end: (err) => (ended = err) });
  await eventually(() => got.length === 2);
  t.strictSame(got, ['/a', '/b']);
  t.ok(s.manager.calls.some((c) => /^WatchTraffic .+:echo-default 64$/.test(c)), 'the intercept id and body size reach the manager');
  s.manager.trafficStreams[0]?.write(event('/c'));
  await eventually(() => got.length === 3);
  s.manager.trafficStreams[0]?.end();
  await eventually(() => ended !== 'open');
  t.equal(ended, undefined, 'a clean end');

  s.manager.putIntercept(info('bob:web', 'web', 'default'));
  // The daemon knows it once the WatchIntercepts snapshot has come.
  let stop: (() => void) | undefined;
  await eventually(() => {
    try {
      stop = s.daemon.watchTraffic({ name: 'web', namespace: 'default', bodyBytes: 0 }, { next: () => undefined, end: () => undefined });
      return true;
    } catch {
      return false;
    }
  });
  await eventually(() => s.manager.calls.includes('WatchTraffic bob:web 0'));
  t.pass('another client’s intercept by the name list shows');
  stop?.();
});

t.test('a manager without WatchTraffic: manager-too-old; an unknown name fails at once', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  t.throws(() => s.daemon.watchTraffic({ name: 'x', namespace: '', bodyBytes: 0 }, { next: () => undefined, end: () => undefined }), { code: 'not-connected' });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  t.throws(() => s.daemon.watchTraffic({ name: 'nope', namespace: '', bodyBytes: 0 }, { next: () => undefined, end: () => undefined }), { code: 'unknown-intercept', hint: /echo-default/ });
  s.manager.trafficUnimplemented = true;
  const ended = await new Promise<TpError | undefined>((resolve) => s.daemon.watchTraffic({ name: 'echo-default', namespace: '', bodyBytes: 0 }, { next: () => undefined, end: resolve }));
  t.match(ended, { code: 'manager-too-old', category: 'cluster', hint: /kubectl telepresence install/ });
});

t.test('over the daemon socket: events stream to the front end, an unknown name comes back as a TpError, cancel stops the manager’s stream', async (t) => {
  const s = await daemonSetup();
  const dir = mkdtempSync(join(tmpdir(), 'tp-traffic-'));
  const socketPath = join(dir, 'd.sock');
  const server = new Server();
  addDaemonToServer(server, s.daemon, () => undefined, () => undefined);
  await bindServer(server, `unix:${socketPath}`);
  const client = new GrpcDaemonClient(socketPath);
  t.teardown(async () => {
    client.close();
    await closeServer(server, socketPath);
    await s.daemon.shutdown();
    s.manager.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  s.manager.trafficEvents = [event('/a')];
  const failed = await new Promise<TpError | undefined>((resolve) => client.watchTraffic({ name: 'nope', namespace: '', bodyBytes: 0 }, () => undefined, resolve));
  t.match(failed, { code: 'unknown-intercept', category: 'user', hint: /echo-default/ });
  const got: string[] = [];
  const stop = client.watchTraffic({ name: 'echo-default', namespace: '', bodyBytes: 0 }, (e) => got.push(e.path), () => t.fail('no end after cancel'));
  await eventually(() => got.length === 1);
  const managerSide = s.manager.trafficStreams[0];
  const cancelled = new Promise<void>((resolve) => managerSide?.on('cancelled', () => resolve()));
  stop();
  await cancelled;
  t.strictSame(got, ['/a']);
});
