import t, { type Test } from 'tap';
import { createServer } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { COPY_KIND, CopyFrameReader } from '@telepresence-ts/core/copy-frames';
import { serveCopies } from '@telepresence-ts/core/daemon/copies';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import type { AgentSettings } from '../../src/agent/env.js';
import type { TappedConnection } from '../../src/agent/forwarder.js';
import type { ForwardRoute } from '../../src/agent/routes.js';
import { CopyChannel, WIRETAP_BUFFER_BYTES, WiretapCopy, type WiretapOutcome } from '../../src/agent/wiretap.js';
import type { AgentConfig } from '@telepresence-ts/core/agent-config';
import { closeServer, exchange, FakeManager, intercept, listenLocal, memoryLogger, openConnection, startReplyServer, until } from './helpers.js';

const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
const connection = (source: string): TappedConnection => ({ route, source, startedAt: 1, interceptId: undefined, routed: false });
const summary = { bytesIn: 0, bytesOut: 0, durationMs: 1, error: undefined };
const silent = (): void => {};

/** Two connected in-memory streams: what one writes the other reads. */
function streamPair(): [Duplex, Duplex] {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  return [Duplex.from({ writable: aToB, readable: bToA }), Duplex.from({ writable: bToA, readable: aToB })];
}

/** A local TCP server that keeps what each connection sent, once it ends, and answers `ignored`. */
async function localSink(t: Test): Promise<{ port: number; got: string[] }> {
  const got: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (text += c));
    socket.on('end', () => {
      got.push(text);
      socket.end('ignored');
    });
  });
  const port = await listenLocal(server);
  t.teardown(() => closeServer(server));
  return { port, got };
}

/** The agent's channel wired to the workstation's end (serveCopies) over an in-memory stream. */
function wired(localPort: number): { channel: CopyChannel; opened: () => number } {
  let opened = 0;
  const channel = new CopyChannel(() => {
    opened++;
    const [agentEnd, workstationEnd] = streamPair();
    void serveCopies(workstationEnd, localPort, silent);
    return agentEnd;
  });
  return { channel, opened: () => opened };
}

t.test('copies of several connections share one stream; each reaches the local port as a connection of its own', async (t) => {
  const sink = await localSink(t);
  const { channel, opened } = wired(sink.port);
  const outcomes: WiretapOutcome[] = [];
  const one = new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) });
  const two = new WiretapCopy('s:tap', connection('10.0.0.9:4001'), { channel, done: (o) => outcomes.push(o) });
  one.fromCaller(Buffer.from('GET /one HTTP/1.1\r\n'));
  two.fromCaller(Buffer.from('GET /two HTTP/1.1\r\n\r\n'));
  one.fromCaller(Buffer.from('Host: x\r\n\r\n'));
  one.closed(summary);
  two.closed(summary);
  await until(() => outcomes.length === 2, 'both outcomes');
  t.equal(opened(), 1, 'one stream for both');
  t.strictSame([...sink.got].sort(), ['GET /one HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /two HTTP/1.1\r\n\r\n']);
  t.strictSame(outcomes.map((o) => [o.source, o.copiedBytes, o.droppedBytes, o.problem]).sort(), [
    ['10.0.0.9:4000', 30, 0, undefined],
    ['10.0.0.9:4001', 21, 0, undefined],
  ]);
  channel.close();
});

t.test('nothing listening on the workstation: the copy is dropped and counted, the caller never waits', async (t) => {
  const probe = createServer();
  const closedPort = await listenLocal(probe);
  await closeServer(probe);
  const { channel } = wired(closedPort);
  const outcomes: WiretapOutcome[] = [];
  const copy = new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) });
  copy.fromCaller(Buffer.from('hello'));
  await new Promise((resolve) => setImmediate(resolve));
  copy.fromCaller(Buffer.from('world'));
  copy.closed(summary);
  await until(() => outcomes.length === 1, 'outcome');
  t.equal(outcomes[0]?.copiedBytes, 0);
  t.equal(outcomes[0]?.droppedBytes, 10, 'every byte counted as dropped');
  t.match(outcomes[0]?.problem, /nothing listens on port \d+/);
  channel.close();
});

/** A stream that takes writes and never drains: a workstation that stopped reading. */
class StalledStream extends Duplex {
  override _write(_chunk: Buffer, _enc: BufferEncoding, _done: (err?: Error) => void): void {}
  override _read(): void {}
}

t.test('a workstation more than the buffer behind: the copy gives up, the rest is counted', async (t) => {
  const channel = new CopyChannel(() => new StalledStream());
  const outcomes: WiretapOutcome[] = [];
  const copy = new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) });
  const piece = Buffer.alloc(300 * 1024, 1);
  copy.fromCaller(piece);
  await new Promise((resolve) => setImmediate(resolve));
  // The first piece waits in the stalled stream; two more wait to be framed (900 KiB and some
  // headers in all); the fourth would pass 1 MiB: the copy gives up, those two waiting included.
  copy.fromCaller(piece);
  copy.fromCaller(piece);
  copy.fromCaller(piece);
  copy.fromCaller(piece);
  copy.closed(summary);
  t.equal(outcomes.length, 1, 'reported at once: there is nothing to wait for');
  t.equal(outcomes[0]?.copiedBytes, piece.length);
  t.equal(outcomes[0]?.droppedBytes, 4 * piece.length);
  t.match(outcomes[0]?.problem, new RegExp(`more than ${WIRETAP_BUFFER_BYTES} bytes behind`));
  channel.close();
});

t.test('without a session the whole connection is dropped, and reported once it ends', async (t) => {
  const channel = new CopyChannel(() => undefined);
  const outcomes: WiretapOutcome[] = [];
  const copy = new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) });
  copy.fromCaller(Buffer.from('abc'));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(outcomes.length, 0, 'not before the connection ends');
  copy.fromCaller(Buffer.from('de'));
  copy.closed(summary);
  t.match(outcomes, [{ copiedBytes: 0, droppedBytes: 5, problem: 'no session with the traffic-manager' }]);
});

t.test('a connection that sent nothing opens no stream', async (t) => {
  let opened = 0;
  const channel = new CopyChannel(() => (opened++, new PassThrough()));
  const outcomes: WiretapOutcome[] = [];
  new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) }).closed(summary);
  t.equal(opened, 0);
  t.match(outcomes, [{ copiedBytes: 0, droppedBytes: 0 }]);
});

t.test('a stream that ends fails the copies on it; the next connection opens another', async (t) => {
  const sink = await localSink(t);
  const ends: Duplex[] = [];
  const channel = new CopyChannel(() => {
    const [agentEnd, workstationEnd] = streamPair();
    ends.push(workstationEnd);
    void serveCopies(workstationEnd, sink.port, silent);
    return agentEnd;
  });
  const outcomes: WiretapOutcome[] = [];
  const first = new WiretapCopy('s:tap', connection('10.0.0.9:4000'), { channel, done: (o) => outcomes.push(o) });
  first.fromCaller(Buffer.from('one'));
  await until(() => ends.length === 1, 'stream opened');
  ends[0]?.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  first.closed(summary);
  await until(() => outcomes.length === 1, 'first outcome');
  t.match(outcomes[0], { copiedBytes: 0, droppedBytes: 3 });
  const second = new WiretapCopy('s:tap', connection('10.0.0.9:4001'), { channel, done: (o) => outcomes.push(o) });
  second.fromCaller(Buffer.from('two'));
  second.closed(summary);
  await until(() => outcomes.length === 2, 'second outcome');
  t.equal(ends.length, 2, 'a new stream');
  t.match(outcomes[1], { copiedBytes: 3, droppedBytes: 0 });
  t.ok(sink.got.includes('two'));
  channel.close();
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

/** The copies a fake manager's tunnel received: the bytes of each connection number, and those ended. */
function copiesIn(data: string): { bytes: Map<number, string>; ended: number[] } {
  const bytes = new Map<number, string>();
  const ended: number[] = [];
  // The frames' headers of these small tests are all below 0x80: the fake's UTF-8 text is exact.
  for (const frame of new CopyFrameReader().push(Buffer.from(data, 'utf8'))) {
    if (frame.kind === COPY_KIND.data) bytes.set(frame.connection, (bytes.get(frame.connection) ?? '') + frame.payload.toString());
    if (frame.kind === COPY_KIND.end) ended.push(frame.connection);
  }
  return { bytes, ended };
}

t.test('a wiretap beside the app: the app answers, the wiretap gets the copies on one stream of its own', async (t) => {
  const { agent, manager, port, appPort } = await setUp(t);
  manager.setIntercepts([wiretap('client-1:tap')]);
  await until(() => agent.session.intercepts.length === 1, 'wiretap seen');
  t.equal(await exchange(port, 'hello'), 'app:hello', 'the app answers, not the wiretap');
  t.equal(await exchange(port, 'again'), 'app:again');
  await until(() => copiesIn(manager.tunnels[0]?.data ?? '').ended.length === 2, 'both copies ended');
  t.equal(manager.tunnels.length, 1, 'one stream for both connections');
  t.equal(manager.tunnels[0]?.open?.interceptId, 'client-1:tap');
  t.equal(manager.tunnels[0]?.open?.containerPort, appPort, 'the tunnel names the container port');
  const copies = copiesIn(manager.tunnels[0]?.data ?? '');
  t.strictSame([...copies.bytes.entries()], [[1, 'hello'], [2, 'again']], 'each connection\'s bytes under its own number');
});

t.test('two wiretaps beside a global intercept: the intercept answers, each wiretap gets a copy', async (t) => {
  const { agent, manager, port } = await setUp(t);
  manager.setIntercepts([wiretap('client-1:tap'), intercept('client-2:echo', 9901), wiretap('client-3:tap')]);
  await until(() => agent.session.intercepts.length === 3, 'all seen');
  t.equal(await exchange(port, 'hi'), 'client:hi', 'the intercept answers');
  const copyOf = (id: string): string | undefined => copiesIn(manager.tunnels.find((tn) => tn.open?.interceptId === id)?.data ?? '').bytes.get(1);
  await until(() => copyOf('client-1:tap') === 'hi' && copyOf('client-3:tap') === 'hi', 'both copies');
  t.strictSame(manager.tunnels.map((tn) => tn.open?.interceptId).sort(), ['client-1:tap', 'client-2:echo', 'client-3:tap']);
});

t.test('a wiretap beside a personal intercept: the router passes the connection on, the wiretap sees the bytes once', async (t) => {
  const { agent, manager, port } = await setUp(t);
  const personal = intercept('client-2:echo', 9901);
  manager.setIntercepts([wiretap('client-1:tap'), { ...personal, spec: { ...personal.spec!, headers: [{ name: 'x-user', value: 'me' }] } }]);
  await until(() => agent.session.intercepts.length === 2, 'both seen');
  // Not HTTP: the router reads the first bytes, puts them back and splices the rest to the app
  // (http-router.test.ts covers requests); the tap must see those bytes once, not twice.
  const request = 'hello, not http';
  const copied = (): string => copiesIn(manager.tunnels.find((tn) => tn.open?.interceptId === 'client-1:tap')?.data ?? '').bytes.get(1) ?? '';
  const conn = await openConnection(port);
  conn.socket.write(request.slice(0, 5));
  // The rest comes after the router has sniffed and spliced: a read past the first.
  await until(() => copied() === request.slice(0, 5), 'first bytes copied');
  conn.socket.end(request.slice(5));
  await conn.ended;
  t.equal(conn.received(), `app:${request}`, 'the app answers');
  await until(() => copied().length >= request.length, 'all copied');
  t.equal(copied(), request, 'the copy has the bytes exactly once');
});
