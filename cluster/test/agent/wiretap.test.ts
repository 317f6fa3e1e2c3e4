import t, { type Test } from 'tap';
import { Duplex, PassThrough } from 'node:stream';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import type { AgentSettings } from '../../src/agent/env.js';
import type { ForwardRoute, TappedConnection } from '../../src/agent/forwarder.js';
import { WIRETAP_BUFFER_BYTES, WiretapCopy, type WiretapOutcome } from '../../src/agent/wiretap.js';
import type { AgentConfig } from '@telepresence-ts/core/agent-config';
import { closeServer, exchange, FakeManager, intercept, memoryLogger, openConnection, startReplyServer, until } from './helpers.js';

const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
const connection: TappedConnection = { route, source: '10.0.0.9:4000', startedAt: 1, interceptId: undefined, routed: false };
const summary = { bytesIn: 0, bytesOut: 0, durationMs: 1, error: undefined };

/** A tunnel that keeps what it is written and can be made to stall (never drain) or fail. */
class SinkTunnel extends Duplex {
  readonly received: Buffer[] = [];
  stalled = false;
  constructor() {
    super({ highWaterMark: 16 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error) => void): void {
    this.received.push(chunk);
    if (!this.stalled) done();
  }
  override _final(done: () => void): void {
    done();
    // The other side closes as soon as it has read the end.
    this.push(null);
  }
  override _read(): void {}
}

function copyWith(tunnel: Duplex | undefined): { copy: WiretapCopy; outcomes: WiretapOutcome[] } {
  const outcomes: WiretapOutcome[] = [];
  const copy = new WiretapCopy('s:tap', connection, { openTunnel: () => tunnel, done: (o) => outcomes.push(o) });
  return { copy, outcomes };
}

t.test('every byte from the caller reaches the copy, which is ended with the connection', async (t) => {
  const tunnel = new SinkTunnel();
  const { copy, outcomes } = copyWith(tunnel);
  const pieces = ['GET / HTTP/1.1\r\n', 'Host: x\r\n\r\n'];
  for (const p of pieces) copy.fromCaller(Buffer.from(p));
  // The copy is written at the end of the turn: nothing is done on the caller's path.
  t.equal(tunnel.received.length, 0);
  copy.closed({ ...summary, bytesIn: 27 });
  await until(() => outcomes.length === 1, 'outcome');
  t.equal(Buffer.concat(tunnel.received).toString(), pieces.join(''));
  t.match(outcomes[0], { interceptId: 's:tap', source: '10.0.0.9:4000', copiedBytes: 27, droppedBytes: 0, problem: undefined });
});

t.test('a workstation that falls behind by more than the buffer loses the rest, counted, and never holds the caller', async (t) => {
  const tunnel = new SinkTunnel();
  tunnel.stalled = true;
  const { copy, outcomes } = copyWith(tunnel);
  const piece = Buffer.alloc(256 * 1024, 1);
  copy.fromCaller(piece);
  await new Promise((resolve) => setImmediate(resolve));
  // The first piece is with the stalled tunnel; three more fit beside it; the fifth does not.
  for (let i = 0; i < 3; i++) copy.fromCaller(piece);
  await new Promise((resolve) => setImmediate(resolve));
  copy.fromCaller(piece);
  copy.fromCaller(piece);
  copy.closed(summary);
  await until(() => outcomes.length === 1, 'outcome');
  t.equal(outcomes[0]?.copiedBytes, 4 * piece.length);
  t.equal(outcomes[0]?.droppedBytes, 2 * piece.length);
  t.match(outcomes[0]?.problem, new RegExp(`less than ${WIRETAP_BUFFER_BYTES} bytes`));
  t.ok(tunnel.destroyed, 'the copy was cut');
});

t.test('a copy that fails (nothing listens on the workstation) counts all it carried as dropped', async (t) => {
  const tunnel = new PassThrough();
  const { copy, outcomes } = copyWith(tunnel);
  copy.fromCaller(Buffer.from('hello'));
  await new Promise((resolve) => setImmediate(resolve));
  tunnel.destroy(new Error('refused: 127.0.0.1:8080'));
  copy.fromCaller(Buffer.from('world'));
  copy.closed(summary);
  await until(() => outcomes.length === 1, 'outcome');
  t.match(outcomes[0], { copiedBytes: 0, droppedBytes: 10, problem: 'refused: 127.0.0.1:8080' });
});

t.test('without a session the whole connection is dropped, and reported once it ends', async (t) => {
  const { copy, outcomes } = copyWith(undefined);
  copy.fromCaller(Buffer.from('abc'));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(outcomes.length, 0, 'not before the connection ends');
  copy.fromCaller(Buffer.from('de'));
  copy.closed(summary);
  t.match(outcomes, [{ copiedBytes: 0, droppedBytes: 5, problem: 'no session with the traffic-manager' }]);
});

t.test('a connection that sent nothing opens no copy', async (t) => {
  let opened = 0;
  const outcomes: WiretapOutcome[] = [];
  const copy = new WiretapCopy('s:tap', connection, { openTunnel: () => (opened++, new PassThrough()), done: (o) => outcomes.push(o) });
  copy.closed(summary);
  t.equal(opened, 0);
  t.match(outcomes, [{ copiedBytes: 0, droppedBytes: 0 }]);
});

function config(appPort: number, managerPort: number): AgentConfig {
  return {
    version: 1,
    agentName: 'echo',
    namespace: 'default',
    workloadName: 'echo',
    workloadKind: 'Deployment',
    agentImage: 'tp-local/traffic-agent:0.1.0',
    managerHost: '127.0.0.1',
    managerPort,
    agentApiPort: 9900,
    logLevel: 'debug',
    containers: [
      {
        name: 'app',
        mountPoint: '/tel_app_mounts/app',
        intercepts: [
          { serviceName: 'echo', serviceUid: 'uid-1', servicePortName: 'http', servicePort: 80, protocol: 'TCP', targetPortNumeric: false, containerPortName: 'http', containerPort: appPort, agentPort: 9901 },
        ],
      },
    ],
  };
}

async function setUp(t: Test): Promise<{ agent: RunningAgent; manager: FakeManager; port: number; appPort: number; outcomes: WiretapOutcome[] }> {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const manager = new FakeManager();
  await manager.start();
  t.teardown(() => manager.stop());
  const settings: AgentSettings = {
    config: config(app.port, manager.port),
    namespace: 'default',
    podName: 'echo-7d9c-abcde',
    podIp: '10.244.0.7',
    apiPort: 0,
    managerHost: '127.0.0.1',
    managerPort: manager.port,
    logLevel: 'debug',
    appContainers: [],
  };
  const outcomes: WiretapOutcome[] = [];
  const agent = await startAgent(settings, memoryLogger(), {
    backoff: { initialMs: 20, maxMs: 100 },
    apiHost: '127.0.0.1',
    forwarder: { host: '127.0.0.1', bindPort: () => 0 },
    onWiretap: (o) => outcomes.push(o),
  });
  t.teardown(() => agent.stop());
  await until(() => agent.session.sessionId !== undefined, 'arrived');
  return { agent, manager, port: agent.forwarder.boundPort(9901) ?? 0, appPort: app.port, outcomes };
}

function wiretap(id: string): ReturnType<typeof intercept> {
  const base = intercept(id, 9901);
  return { ...base, spec: { ...base.spec!, mode: 'wiretap' } };
}

t.test('a wiretap beside the app: the app answers, the wiretap gets a copy through its own tunnel', async (t) => {
  const { agent, manager, port, appPort, outcomes } = await setUp(t);
  manager.setIntercepts([wiretap('client-1:tap')]);
  await until(() => agent.session.intercepts.length === 1, 'wiretap seen');
  t.equal(await exchange(port, 'hello'), 'app:hello', 'the app answers, not the wiretap');
  await until(() => outcomes.length === 1, 'copy done');
  t.equal(manager.tunnels.length, 1);
  t.equal(manager.tunnels[0]?.open?.interceptId, 'client-1:tap');
  t.equal(manager.tunnels[0]?.open?.containerPort, appPort, 'the tunnel names the container port');
  t.equal(manager.tunnels[0]?.data, 'hello', 'the copy carries the caller\'s bytes');
  t.match(outcomes[0], { interceptId: 'client-1:tap', copiedBytes: 5, droppedBytes: 0, connection: { bytesIn: 5, bytesOut: 9 } });
});

t.test('two wiretaps beside a global intercept: the intercept answers, each wiretap gets a copy', async (t) => {
  const { agent, manager, port, outcomes } = await setUp(t);
  manager.setIntercepts([wiretap('client-1:tap'), intercept('client-2:echo', 9901), wiretap('client-3:tap')]);
  await until(() => agent.session.intercepts.length === 3, 'all seen');
  t.equal(await exchange(port, 'hi'), 'client:hi', 'the intercept answers');
  await until(() => outcomes.length === 2, 'copies done');
  const byId = new Map(manager.tunnels.map((tn) => [tn.open?.interceptId, tn.data]));
  t.strictSame([...byId.keys()].sort(), ['client-1:tap', 'client-2:echo', 'client-3:tap']);
  t.equal(byId.get('client-1:tap'), 'hi');
  t.equal(byId.get('client-3:tap'), 'hi');
});

t.test('a wiretap beside a personal intercept: the router passes the connection on, the wiretap sees the bytes once', async (t) => {
  const { agent, manager, port, outcomes } = await setUp(t);
  const personal = intercept('client-2:echo', 9901);
  manager.setIntercepts([wiretap('client-1:tap'), { ...personal, spec: { ...personal.spec!, headers: [{ name: 'x-user', value: 'me' }] } }]);
  await until(() => agent.session.intercepts.length === 2, 'both seen');
  // Not HTTP: the router reads the first bytes, puts them back and splices the rest to the app
  // (http-router.test.ts covers requests); the tap must see those bytes once, not twice.
  const request = 'hello, not http';
  const conn = await openConnection(port);
  conn.socket.write(request.slice(0, 5));
  // The rest comes after the router has sniffed and spliced: a read past the first.
  await until(() => manager.tunnels.some((tn) => tn.data === request.slice(0, 5)), 'first bytes copied');
  conn.socket.end(request.slice(5));
  await conn.ended;
  t.equal(conn.received(), `app:${request}`, 'the app answers');
  await until(() => outcomes.length === 1, 'copy done');
  const tap = manager.tunnels.find((tn) => tn.open?.interceptId === 'client-1:tap');
  t.equal(tap?.data, request, 'the copy has the request exactly once');
  t.match(outcomes[0], { copiedBytes: request.length, droppedBytes: 0, connection: { bytesIn: request.length } });
});
