import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { BackoffPolicy } from '@telepresence-ts/core/backoff';
import { ManagerSession, createManagerClient } from '../../src/agent/session.js';
import { FakeManager, intercept, memoryLogger, until } from './helpers.js';

// Fast retries: the behaviour is the same at 0.5-5 s, the suite just does not wait for it.
const FAST: BackoffPolicy = { initialMs: 20, maxMs: 100 };

const AGENT = { name: 'echo', namespace: 'default', podName: 'echo-7d9c-abcde', podIp: '10.244.0.7', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 };

async function setUp(t: Test): Promise<{ manager: FakeManager; session: ManagerSession; log: ReturnType<typeof memoryLogger> }> {
  const manager = new FakeManager();
  await manager.start();
  t.teardown(() => manager.stop());
  const client = createManagerClient(manager.address, FAST);
  const log = memoryLogger();
  const session = new ManagerSession({ client, agent: AGENT, log, backoff: FAST });
  t.teardown(async () => {
    await session.stop();
    client.close();
  });
  session.start();
  return { manager, session, log };
}

t.test('arrives with its AgentInfo and follows the intercept snapshots', async (t) => {
  const { manager, session } = await setUp(t);
  await until(() => session.sessionId !== undefined, 'arrived');
  t.strictSame(manager.arrivals, [AGENT], 'AgentInfo as given');
  t.equal(session.sessionId, 'agent-1');
  t.strictSame(session.intercepts, [], 'the first snapshot is empty');

  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => session.intercepts.length === 1, 'snapshot received');
  t.equal(session.intercepts[0]?.id, 'client-1:echo');
  manager.setIntercepts([]);
  await until(() => session.intercepts.length === 0, 'removal received');
  t.strictSame(session.intercepts, []);
});

t.test('heartbeats with Remain at the manager\'s interval', async (t) => {
  const { manager } = await setUp(t);
  // The fake answers heartbeat_seconds: 1.
  await until(() => manager.remains >= 1, 'a Remain', 3000);
  t.ok(manager.remains >= 1);
});

t.test('an expired session (Remain NOT_FOUND) arrives again', async (t) => {
  const { manager, session } = await setUp(t);
  await until(() => session.arrivals === 1, 'arrived');
  manager.expireNext = true;
  await until(() => session.arrivals === 2, 'arrived again', 4000);
  t.equal(session.sessionId, 'agent-2', 'with the new session');
  t.equal(manager.arrivals.length, 2);
});

t.test('manager restart: intercepts dropped at once, arrival and snapshot again on return', async (t) => {
  const { manager, session, log } = await setUp(t);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => session.intercepts.length === 1, 'intercept seen');

  manager.stop();
  await until(() => session.sessionId === undefined, 'session dropped');
  t.strictSame(session.intercepts, [], 'no intercept while the manager is away');
  t.match(log.lines.filter((l) => l.level === 'warn'), [{ msg: /no session with the traffic-manager/ }]);

  await manager.start(); // same port, intercepts kept, as a manager rebuilding its state would
  await until(() => session.intercepts.length === 1, 'intercept seen again', 8000);
  t.equal(session.arrivals, 2, 'arrived again');
  t.equal(session.sessionId, 'agent-2');
});

t.test('a manager that is not there at start is retried until it comes', async (t) => {
  const manager = new FakeManager();
  await manager.start();
  manager.stop(); // keep the port, lose the server
  const client = createManagerClient(manager.address, FAST);
  const session = new ManagerSession({ client, agent: AGENT, log: memoryLogger(), backoff: FAST });
  t.teardown(async () => {
    await session.stop();
    client.close();
    manager.stop();
  });
  session.start();
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(session.arrivals, 0, 'no arrival without a manager');
  await manager.start();
  await until(() => session.arrivals === 1, 'arrived once the manager came', 8000);
  t.equal(session.arrivals, 1);
});

t.test('stop departs, and a stopped session does not come back', async (t) => {
  const { manager, session } = await setUp(t);
  await until(() => session.arrivals === 1, 'arrived');
  await session.stop();
  t.equal(manager.departs, 1, 'departed');
  t.equal(session.sessionId, undefined);
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(manager.arrivals.length, 1, 'no new arrival after stop');
});

t.test('no tunnel without a session', async (t) => {
  const manager = new FakeManager();
  await manager.start();
  manager.stop();
  const client = createManagerClient(manager.address, FAST);
  t.teardown(() => client.close());
  const session = new ManagerSession({ client, agent: AGENT, log: memoryLogger(), backoff: FAST });
  t.equal(session.openTunnel('client-1:echo', '10.0.0.1:1234'), undefined);
});

t.test('an arrival that finds no manager gets a new channel, which reaches the manager when it is back', async (t) => {
  const manager = new FakeManager();
  await manager.start();
  const address = manager.address;
  manager.stop();
  t.teardown(() => manager.stop());
  let made = 0;
  const newClient = () => {
    made++;
    return createManagerClient(address, FAST);
  };
  const session = new ManagerSession({ client: newClient(), newClient, agent: AGENT, log: memoryLogger(), backoff: FAST });
  t.teardown(async () => {
    await session.stop();
    session.client.close();
  });
  session.start();
  await until(() => made >= 3, 'channels remade after failed arrivals');
  await manager.start();
  await until(() => session.sessionId !== undefined, 'arrived at the manager that came back');
  t.pass('arrived');
});

t.test('an arrival whose channel is never answered (a vanished pod) gets a new channel within the arrival deadline', async (t) => {
  // A listener that takes the connection and says nothing: the channel never becomes ready, as
  // when the Service still routes to a manager pod that is gone.
  const held = new Set<Socket>();
  const silent = createServer((socket) => held.add(socket));
  await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
  t.teardown(
    () =>
      new Promise<void>((ok) => {
        for (const socket of held) socket.destroy();
        silent.close(() => ok());
      }),
  );
  const manager = new FakeManager();
  await manager.start();
  t.teardown(() => manager.stop());
  const silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const addresses = [silentAddress, manager.address];
  let made = 0;
  const newClient = () => createManagerClient(addresses[Math.min(made++, 1)] ?? manager.address, FAST);
  const session = new ManagerSession({ client: newClient(), newClient, agent: AGENT, log: memoryLogger(), backoff: FAST, arrivalDeadlineMs: 300 });
  t.teardown(async () => {
    await session.stop();
    session.client.close();
  });
  session.start();
  // Well inside the 10 s deadline of other calls: only the arrival deadline can have ended the wait.
  await until(() => session.sessionId !== undefined, 'arrived through the new channel', 5000);
  t.equal(made, 2, 'one new channel');
});
