import { Server, credentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { ManagerClient, type SessionInfo, type TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { dialError, parseDestination, type OutboundOptions } from '../../src/manager/outbound.js';
import { addToServer } from '../../src/manager/service.js';
import { State } from '../../src/manager/state.js';
import { listenGrpcAndHealth } from '../../src/shared/grpc-http-mux.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { testServiceDeps } from './service-deps.js';


/** A manager on 127.0.0.1:0 with a client session; `logs` holds its debug lines. */
async function startManager(t: Test, timeouts: Pick<OutboundOptions, 'connectTimeoutMs' | 'udpIdleMs' | 'dialTcp'> = {}) {
  const clock = new FakeClock();
  const state = new State(clock);
  const server = new Server();
  const logs: string[] = [];
  addToServer(server, testServiceDeps(state, clock, { log: createLogger('traffic-manager', 'debug', (line) => logs.push(line)), outbound: timeouts }));
  const listener = await listenGrpcAndHealth(server, 0, '127.0.0.1');
  const client = new ManagerClient(`127.0.0.1:${listener.port}`, credentials.createInsecure());
  const session: SessionInfo = state.arriveAsClient({ name: 'alice@laptop', installId: 'a', product: 'cli', version: '0.1.0', resumeSessionId: '' });
  t.teardown(async () => {
    client.close();
    state.close();
    await listener.close();
    server.forceShutdown();
  });
  return { client, session, state, logs };
}

/** An Outbound stream and everything it receives. */
interface Flow {
  readonly stream: ClientDuplexStream<TunnelMessage, TunnelMessage>;
  readonly messages: TunnelMessage[];
  /** Resolves when the manager ends the stream (with the error, if it failed). */
  readonly ended: Promise<ServiceError | undefined>;
  isEnded(): boolean;
}

function openFlow(client: ManagerClient, sessionId: string, protocol: string, destination: string, connectionId = 'c1'): Flow {
  const stream = client.outbound();
  const messages: TunnelMessage[] = [];
  let done = false;
  stream.on('data', (m: TunnelMessage) => messages.push(m));
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    stream.on('end', () => resolve(undefined));
    stream.on('error', (e: ServiceError) => resolve(e));
  }).finally(() => (done = true));
  stream.write({ open: { sessionId, connectionId, interceptId: '', protocol, destination } });
  return { stream, messages, ended, isEnded: () => done };
}

/** The bytes of every `data` message, in order. */
const received = (f: Flow): Buffer => Buffer.concat(f.messages.flatMap((m) => (m.data === undefined ? [] : [Buffer.from(m.data)])));
/** Each message as a short label: "open", "data", "close:<error>". */
const kinds = (f: Flow): string[] => f.messages.map((m) => (m.open !== undefined ? 'open' : m.data !== undefined ? 'data' : `close:${m.close?.error ?? ''}`));

async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A TCP server on 127.0.0.1:0 that half-opens (allowHalfOpen) and hands each connection to `onConn`. */
async function tcpServer(t: Test, onConn: (s: Socket) => void): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, sockets };
}

/** Echoes, and on the client's FIN sends "bye" and its own FIN. */
const echo = (s: Socket): void => {
  s.on('data', (d: Buffer) => s.write(d));
  s.on('end', () => s.end('bye'));
};

t.test('parseDestination takes an address and a port, never a name', async (t) => {
  const cases: Array<[string, ReturnType<typeof parseDestination>]> = [
    ['10.96.0.1:443', { host: '10.96.0.1', port: 443, family: 4 }],
    ['[fd00::1]:53', { host: 'fd00::1', port: 53, family: 6 }],
    ['web.default:80', undefined],
    ['10.96.0.1', undefined],
    ['fd00::1:53', undefined],
    ['[10.96.0.1]:80', undefined],
    ['10.96.0.1:0', undefined],
    ['10.96.0.1:65536', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) t.strictSame(parseDestination(text), want, JSON.stringify(text));
});

t.test('dial errors: refused for a reset, unreachable with the code otherwise', async (t) => {
  t.equal(dialError({ code: 'ECONNREFUSED' }, '10.0.0.1:80'), 'refused: 10.0.0.1:80');
  t.equal(dialError({ code: 'EHOSTUNREACH' }, '10.0.0.1:80'), 'unreachable: EHOSTUNREACH 10.0.0.1:80');
  t.equal(dialError(new Error('odd'), '[fd00::1]:80'), 'unreachable: ERROR [fd00::1]:80');
});

t.test('TCP: open echo, data both ways, the client half-closes first', async (t) => {
  const dest = await tcpServer(t, echo);
  const { client, session, logs } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  await eventually(() => f.messages.length >= 1);
  t.strictSame(f.messages[0]?.open, { sessionId: '', connectionId: 'c1', interceptId: '', protocol: 'tcp', destination: `127.0.0.1:${dest.port}`, containerPort: undefined }, 'the open echo comes first');
  f.stream.write({ data: Buffer.from('hello') });
  await eventually(() => received(f).toString() === 'hello');
  f.stream.write({ close: { error: '' } });
  t.equal(await f.ended, undefined, 'the stream ends with OK once both ways are closed');
  t.equal(received(f).toString(), 'hellobye', "the destination's last words after the client's FIN");
  t.strictSame(kinds(f).slice(-1), ['close:'], "the destination's FIN as close {''}");
  t.ok(logs.some((l) => l.includes('"outbound flow ended"') && l.includes('"active":0')), 'counted out at debug');
});

t.test('TCP: the destination half-closes first; the client still sends', async (t) => {
  const got: Buffer[] = [];
  let destEnded = false;
  const dest = await tcpServer(t, (s) => {
    s.end('welcome');
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => (destEnded = true));
  });
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  await eventually(() => kinds(f).includes('close:'));
  t.strictSame(kinds(f), ['open', 'data', 'close:']);
  t.equal(received(f).toString(), 'welcome');
  t.notOk(f.isEnded(), 'the stream stays open for what the client sends');
  f.stream.write({ data: Buffer.from('still here') });
  await eventually(() => Buffer.concat(got).toString() === 'still here');
  f.stream.end(); // ending the call is a half-close too
  await eventually(() => destEnded);
  t.equal(await f.ended, undefined);
});

t.test('TCP: 8 MiB each way, intact (backpressure both ways)', async (t) => {
  const dest = await tcpServer(t, echo);
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  const payload = randomBytes(8 << 20);
  for (let off = 0; off < payload.length; off += 64 << 10) f.stream.write({ data: payload.subarray(off, off + (64 << 10)) });
  f.stream.write({ close: { error: '' } });
  await f.ended;
  t.ok(received(f).equals(Buffer.concat([payload, Buffer.from('bye')])), 'every byte, in order');
});

t.test('TCP: a refused port gets close {refused: ...} and the end', async (t) => {
  const free = await tcpServer(t, () => undefined);
  const port = free.port;
  // Nothing listens on the port once its server is closed.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadPort = (closed.address() as { port: number }).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  t.not(deadPort, port);
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${deadPort}`);
  t.equal(await f.ended, undefined);
  t.strictSame(kinds(f), [`close:refused: 127.0.0.1:${deadPort}`]);
});

t.test('TCP: no connection within the connect timeout is unreachable: ETIMEDOUT', async (t) => {
  // A dial that never completes (whether an address blackholes SYNs depends on the network).
  let pending: Socket | undefined;
  const { client, session } = await startManager(t, { connectTimeoutMs: 200, dialTcp: () => (pending = new Socket()) });
  const started = Date.now();
  const f = openFlow(client, session.sessionId, 'tcp', '192.0.2.1:80');
  t.equal(await f.ended, undefined);
  t.ok(Date.now() - started >= 150, 'after the timeout');
  t.strictSame(kinds(f), ['close:unreachable: ETIMEDOUT 192.0.2.1:80']);
  t.ok(pending?.destroyed, 'the dial is abandoned');
});

t.test('a bad first message gets close {invalid: / session: ...} and the end', async (t) => {
  const { client, session } = await startManager(t);
  const cases: Array<[string, string, string, RegExp]> = [
    ['a name', 'tcp', 'web.default:80', /^invalid: destination "web.default:80"/],
    ['no port', 'tcp', '10.96.0.1', /^invalid: destination/],
    ['a protocol other than tcp or udp', 'sctp', '10.96.0.1:80', /^invalid: protocol "sctp"/],
  ];
  for (const [name, protocol, destination, want] of cases) {
    const f = openFlow(client, session.sessionId, protocol, destination);
    t.equal(await f.ended, undefined, name);
    t.match(kinds(f), [new RegExp(`^close:${want.source.slice(1)}`)], name);
  }
  const unknown = openFlow(client, 'nope', 'tcp', '127.0.0.1:1');
  await unknown.ended;
  t.match(kinds(unknown), [/^close:session: /], 'an unknown session');

  const stream = client.outbound();
  const messages: TunnelMessage[] = [];
  stream.on('data', (m: TunnelMessage) => messages.push(m));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  stream.write({ data: Buffer.from('x') });
  await ended;
  t.match(messages, [{ close: { error: /^invalid: the first message must be open/ } }], 'data before open');
});

t.test('TCP: the client cancelling its call closes the destination connection', async (t) => {
  let destClosed = false;
  const dest = await tcpServer(t, (s) => {
    s.on('error', () => undefined);
    // The destination holds its side open until the manager's socket is gone for good.
    s.on('end', () => setTimeout(() => s.write('anyone?'), 50));
    s.on('close', () => (destClosed = true));
  });
  const { client, session, logs } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  await eventually(() => f.messages.length >= 1);
  f.stream.on('error', () => undefined);
  f.stream.cancel();
  await eventually(() => destClosed);
  t.ok(destClosed, "the manager's socket is gone");
  await eventually(() => logs.some((l) => l.includes('"outbound flow ended"')));
  t.ok(logs.some((l) => l.includes('"outbound flow ended"') && l.includes('"active":0')));
});

t.test('TCP: close with an error from the client resets the destination connection', async (t) => {
  let destError = '';
  let destClosed = false;
  const dest = await tcpServer(t, (s) => {
    s.on('error', (e: NodeJS.ErrnoException) => (destError = e.code ?? ''));
    s.on('close', () => (destClosed = true));
  });
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  await eventually(() => f.messages.length >= 1);
  f.stream.write({ close: { error: 'reset by the workstation' } });
  t.equal(await f.ended, undefined);
  await eventually(() => destClosed);
  t.equal(destError, 'ECONNRESET', 'the destination sees a reset, not a FIN');
});

t.test('TCP: the destination resetting fails the flow with close {failed: ...}', async (t) => {
  const dest = await tcpServer(t, (s) => s.on('data', () => s.resetAndDestroy()));
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'tcp', `127.0.0.1:${dest.port}`);
  await eventually(() => f.messages.length >= 1);
  f.stream.write({ data: Buffer.from('x') });
  t.equal(await f.ended, undefined);
  t.strictSame(kinds(f), ['open', 'close:failed: ECONNRESET']);
});

t.test('UDP: one data message per datagram, both ways', async (t) => {
  const server = createSocket('udp4');
  server.on('message', (msg, from) => server.send(Buffer.concat([Buffer.from('re:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { client, session } = await startManager(t);
  const f = openFlow(client, session.sessionId, 'udp', `127.0.0.1:${server.address().port}`);
  await eventually(() => f.messages.length >= 1);
  t.strictSame(kinds(f), ['open'], 'the open echo at once');
  f.stream.write({ data: Buffer.from('one') });
  await eventually(() => f.messages.length >= 2);
  f.stream.write({ data: Buffer.from('two') });
  await eventually(() => f.messages.length >= 3);
  t.strictSame(
    f.messages.slice(1).map((m) => Buffer.from(m.data ?? []).toString()),
    ['re:one', 're:two'],
  );
  f.stream.end();
  t.equal(await f.ended, undefined, 'the client ending the call ends the flow');
});

t.test('UDP: a flow idle for the idle time ends', async (t) => {
  const server = createSocket('udp4');
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { client, session } = await startManager(t, { udpIdleMs: 150 });
  const f = openFlow(client, session.sessionId, 'udp', `127.0.0.1:${server.address().port}`);
  await eventually(() => f.messages.length >= 1);
  const started = Date.now();
  f.stream.write({ data: Buffer.from('into the void') });
  t.equal(await f.ended, undefined);
  t.ok(Date.now() - started >= 100, 'not before the idle time');
  t.strictSame(kinds(f), ['open']);
});

t.test('UDP: nothing listening does not end the flow (a lost datagram)', async (t) => {
  const probe = createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const { client, session } = await startManager(t, { udpIdleMs: 300 });
  const f = openFlow(client, session.sessionId, 'udp', `127.0.0.1:${port}`);
  await eventually(() => f.messages.length >= 1);
  f.stream.write({ data: Buffer.from('a') });
  f.stream.write({ data: Buffer.from('b') });
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(f.isEnded(), 'still open after the ICMP port unreachable');
  t.equal(await f.ended, undefined, 'and ended by the idle time');
  t.strictSame(kinds(f), ['open']);
});
