import t from 'tap';
import type { ManagerClient, SessionInfo } from '@telepresence-ts/proto/manager/v1';
import { ConnectionState } from '@telepresence-ts/proto/daemon/v1';
import { checkManagerVersion, majorMinor, RECOVERY_BACKOFF, SessionKeeper, type Session } from '../../src/daemon/session-keeper.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { TpError } from '../../src/errors.js';
import { fromServiceError, toStatus } from '../../src/wire-errors.js';
import { CONNECT_ARGS, connectedOnFakeClock, daemonSetup, FakeClock, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

/** Settles pending promise callbacks (no time passes: the clock is fake). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('majorMinor and the version check', (t) => {
  t.equal(majorMinor('1.2.3'), '1.2');
  t.equal(majorMinor('v0.1.0-dev'), '0.1');
  t.doesNotThrow(() => checkManagerVersion('1.2.3', '1.2.0'));
  t.throws(() => checkManagerVersion('1.2.3', '1.3.0'), { code: 'version-mismatch', category: 'config' });
  t.end();
});

t.test('the heartbeat comes every heartbeat period of the manager, on the clock', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  const remains = (): number => s.manager.calls.filter((c) => c === 'Remain').length;
  t.equal(clock.nextWakeIn(), s.manager.heartbeatSeconds * 1000, 'the next heartbeat is one period away');
  t.equal(remains(), 0, 'no heartbeat before the period has passed');
  clock.advance(1_000);
  await eventually(() => remains() === 1, 5_000, 'a heartbeat');
  clock.advance(1_000);
  await eventually(() => remains() === 2, 5_000, 'the next heartbeat');
  await s.daemon.disconnect();
  clock.advance(10_000);
  await flush();
  t.equal(remains(), 2, 'none after the session was closed');
});

t.test('a session the manager lost arrives again under its id and creates its intercepts again', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  const before = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  const prepares = s.manager.calls.filter((c) => c === 'PrepareIntercept').length;
  // As a restarted manager: no session, no intercepts. The next heartbeat finds out.
  s.manager.expireSessions();
  clock.advance(s.manager.heartbeatSeconds * 1000);
  await eventually(() => s.manager.calls.filter((c) => c === 'PrepareIntercept').length > prepares && s.daemon.status().error === '' && s.daemon.snapshot().intercepts.length === 1, 5_000, 'the intercept made again');
  t.equal(s.daemon.status().sessionId, 'sess-1', 'the same session id');
  t.equal(s.daemon.snapshot().intercepts[0]?.id, before.id, 'the intercept keeps its id');
  t.strictSame(s.daemon.status().lostIntercepts, []);
  t.equal(s.manager.calls.filter((c) => c === 'ArriveAsClient').length, 2, 'arrived once more, no more');
});

t.test('when the manager stops answering, the daemon reconnects at once and keeps a session that is still alive', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  // Heartbeats fail (as through a dead port-forward) until the connector is asked again.
  let broken = true;
  s.manager.failRemain = () => broken;
  const connectsBefore = s.connects;
  clock.advance(s.manager.heartbeatSeconds * 1000);
  await eventually(() => s.connects > connectsBefore && /trying again/.test(s.daemon.status().error), 5_000, 'a reconnect that still fails');
  t.match(s.daemon.status().error, /^the traffic-manager cannot be reached; trying again: /, 'the status says the daemon is trying again');
  t.ok(clock.nextWakeIn() <= RECOVERY_BACKOFF.initialMs, `the first retry comes within ${RECOVERY_BACKOFF.initialMs} ms`);
  broken = false;
  clock.advance(RECOVERY_BACKOFF.initialMs);
  await eventually(() => s.daemon.status().error === '', 5_000, 'a healthy session');
  t.equal(s.daemon.status().sessionId, 'sess-1', 'the same session');
  t.equal(s.daemon.snapshot().intercepts.length, 1, 'its intercepts kept');
});

t.test('a manager upgraded under the connection to another major.minor: disconnected, each intercept reported ended with the fix, no more retries', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  // The upgrade: the manager pod is replaced (the channel breaks) by one of version 1.3.
  const connects = s.connects;
  s.manager.failRemain = () => s.connects === connects;
  s.manager.version = '1.3.0';
  clock.advance(s.manager.heartbeatSeconds * 1000);
  await eventually(() => s.daemon.status().state === ConnectionState.DISCONNECTED, 5_000, 'the daemon to disconnect');
  const status = s.daemon.status();
  t.match(status.error, /^disconnected: the traffic-manager was replaced: this client is v1\.2\.3 but the traffic-manager is v1\.3\.0: .*run `kubectl telepresence install` with this v1\.2\.3 client .* or use a v1\.3\.x client/);
  t.match(status.lostIntercepts, [{ name: 'echo', reason: /this client is v1\.2\.3 but the traffic-manager is v1\.3\.0/ }], 'the intercept is reported ended, with why');
  t.strictSame(s.daemon.snapshot().intercepts, [], 'and no longer listed as ours');
  const after = s.connects;
  t.ok(after > connects, 'it did try the new manager');
  clock.advance(RECOVERY_BACKOFF.maxMs * 2);
  await flush();
  t.equal(s.connects, after, 'and tries no more');
});

t.test('recovery retries back off up to a cap, and stop when the connection is closed', async (t) => {
  const clock = new FakeClock();
  const s = await daemonSetup('1.2.3', { clock });
  t.teardown(() => s.manager.stop());
  await s.daemon.connect(CONNECT_ARGS);
  s.manager.failRemain = () => true;
  clock.advance(s.manager.heartbeatSeconds * 1000);
  const failures = (): number => s.logs.filter((l) => l.startsWith('warn the traffic-manager cannot be reached; trying again')).length;
  await eventually(() => failures() === 1, 5_000, 'the first attempt to fail');
  // Past the point where doubling would exceed the cap, each pause still ends within it.
  for (let attempt = 2; attempt <= 8; attempt++) {
    clock.advance(RECOVERY_BACKOFF.maxMs);
    await eventually(() => failures() === attempt, 5_000, `attempt ${attempt} within ${RECOVERY_BACKOFF.maxMs} ms of the last`);
  }
  t.equal(s.connects, 1 + 8, 'each attempt opened a new port-forward');
  await s.daemon.shutdown();
  const connects = s.connects;
  clock.advance(RECOVERY_BACKOFF.maxMs * 2);
  await flush();
  t.equal(s.connects, connects, 'no attempt after the connection was closed');
});

t.test('a command waits for a recovery under way, but not for ever', async (t) => {
  const clock = new FakeClock();
  const keeper = new SessionKeeper({
    version: '1.2.3',
    connector: () => Promise.reject(new Error('not used')),
    log: () => undefined,
    clientName: 'alice@laptop',
    installId: 'install-1',
    clock,
    events: { changed: () => undefined, intercepts: () => undefined, localPortOf: () => undefined, arrivedAgain: async () => undefined, recoveryState: () => undefined, incompatible: async () => undefined },
  });
  let finish = (): void => undefined;
  const session = {
    conn: { manager: {} as ManagerClient },
    info: { sessionId: 'sess-1' } as SessionInfo,
    closing: false,
    recovering: new Promise<void>((resolve) => (finish = resolve)),
  } as unknown as Session;
  const calls: string[] = [];
  const first = keeper.managerCall(session, async (_mgr, info) => {
    calls.push(info.sessionId);
    return 'done';
  });
  await flush();
  t.strictSame(calls, [], 'not called while the session is being recovered');
  finish();
  t.equal(await first, 'done');
  t.strictSame(calls, ['sess-1'], 'called once the recovery is over');

  session.recovering = new Promise<void>(() => undefined);
  const second = keeper.managerCall(session, async () => 'tried anyway');
  await flush();
  clock.advance(30_000);
  t.equal(await second, 'tried anyway', 'after 30 s without a recovery, the command tries anyway');

  session.recovering = undefined;
  await t.rejects(
    keeper.managerCall(session, async () => {
      throw new TpError('user', 'unknown-workload', 'no workload named ghost');
    }),
    { code: 'unknown-workload' },
    "the manager's own errors reach the command, no recovery is started",
  );
  t.equal(session.recovering, undefined);
});

t.test('a cluster error the manager sent is its answer: the call is not made again', async (t) => {
  const keeper = new SessionKeeper({
    version: '1.2.3',
    connector: () => Promise.reject(new Error('not used')),
    log: () => undefined,
    clientName: 'alice@laptop',
    installId: 'install-1',
    clock: new FakeClock(),
    events: { changed: () => undefined, intercepts: () => undefined, localPortOf: () => undefined, arrivedAgain: async () => undefined, recoveryState: () => undefined, incompatible: async () => undefined },
  });
  const session = { conn: { manager: {} as ManagerClient }, info: { sessionId: 'sess-1' } as SessionInfo, closing: false, recovering: undefined } as unknown as Session;
  // As the daemon sees a failed prepare: a cluster TpError travels as UNAVAILABLE, with its metadata.
  const status = toStatus(new TpError('cluster', 'agent-not-injected', 'pods were created without the traffic-agent'));
  t.equal(status.code, grpcStatus.UNAVAILABLE, 'the wire status is the one a dead channel has');
  let calls = 0;
  await t.rejects(
    keeper.managerCall(session, async () => {
      calls++;
      throw fromServiceError(Object.assign(new Error(status.details), status));
    }),
    { code: 'agent-not-injected' },
  );
  t.equal(calls, 1, 'called once: a prepare that failed is not run again');
  t.equal(session.recovering, undefined, 'and no recovery is started');
});
