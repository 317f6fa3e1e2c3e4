import { Server, credentials } from '@grpc/grpc-js';
import { DIAL_PORT_PARKED } from '@telepresence-ts/core/contracts';
import { DirectStream, parseHeader } from '@telepresence-ts/core/direct-stream';
import { ManagerClient, type ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, Socket, type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { DialPort } from '../../src/manager/dial-port.js';
import { addToServer } from '../../src/manager/service.js';
import { State } from '../../src/manager/state.js';
import { listenGrpcAndHealth } from '../../src/shared/grpc-http-mux.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { testServiceDeps } from './service-deps.js';

async function eventually(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`not in time: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A dial port with a client session; `logs` holds its debug lines. */
async function startDialPort(t: Test, opts: { connectTimeoutMs?: number; dialTcp?: () => Socket } = {}) {
  const state = new State(new FakeClock());
  const logs: string[] = [];
  const dial = await DialPort.start({
    log: createLogger('traffic-manager', 'debug', (line) => logs.push(line)),
    requireClient: (id) => state.requireClient(id),
    port: 0,
    ...opts,
  });
  const session = state.arriveAsClient({ name: 'alice@laptop', installId: 'a', product: 'cli', version: '0.1.0', resumeSessionId: '' });
  t.teardown(async () => {
    state.close();
    await dial.close();
  });
  return { dial, session: session.sessionId, logs };
}

/** A TCP server on 127.0.0.1:0 handing each connection to `onConn`. */
async function tcpServer(t: Test, onConn: (s: Socket) => void): Promise<number> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A client's parked stream: connected, nothing said yet. */
async function park(port: number): Promise<{ stream: DirectStream; raw: Socket }> {
  const raw = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve);
    raw.once('error', reject);
  });
  // The manager's parked frame first: a 4-byte length and {"parked":true}.
  const parked = Buffer.alloc(4 + Buffer.byteLength(DIAL_PORT_PARKED));
  let have = 0;
  await new Promise<void>((resolve) => {
    const onReadable = (): void => {
      for (let chunk = raw.read(parked.length - have) as Buffer | null; chunk !== null; chunk = raw.read(parked.length - have) as Buffer | null) {
        chunk.copy(parked, have);
        have += chunk.length;
        if (have === parked.length) {
          raw.off('readable', onReadable);
          resolve();
          return;
        }
      }
    };
    raw.on('readable', onReadable);
  });
  if (parked.readUInt32BE(0) !== parked.length - 4 || parked.subarray(4).toString() !== DIAL_PORT_PARKED) throw new Error(`not a parked frame: ${parked.toString('hex')}`);
  const stream = new DirectStream(raw);
  raw.resume();
  return { stream, raw };
}

/** Sends a flow's header and returns the manager's answer. */
async function ask(stream: DirectStream, header: Record<string, unknown>): Promise<Record<string, unknown>> {
  stream.sendHeader(header as { session: string });
  return parseHeader(await stream.header);
}

/** Everything a stream delivers until its end; with the error if it broke instead. */
function readAll(stream: DirectStream | Socket): Promise<{ data: Buffer; error: Error | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: Error | undefined;
    stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    stream.on('error', (e: Error) => (error = e));
    stream.on('end', () => resolve({ data: Buffer.concat(chunks), error }));
    stream.on('close', () => resolve({ data: Buffer.concat(chunks), error: error ?? new Error('closed without an end') }));
  });
}

t.test('a parked stream waits for its header; then dial, ok, data both ways, the client half-closes first', async (t) => {
  const { dial, session } = await startDialPort(t);
  const port = await tcpServer(t, (s) => {
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end('bye'));
  });
  const { stream } = await park(dial.port);
  await eventually(() => dial.waiting === 1, 'the stream to be parked');
  t.equal(dial.active, 0);
  t.strictSame(await ask(stream, { session, protocol: 'tcp', destination: `127.0.0.1:${port}` }), { ok: true });
  t.equal(dial.waiting, 0);
  const got = readAll(stream);
  stream.write('hello');
  stream.end();
  const { data, error } = await got;
  t.equal(data.toString(), 'hellobye', "the destination's bytes, after the client's end");
  t.equal(error, undefined);
  await eventually(() => dial.active === 0, 'the flow to end');
});

t.test('the destination half-closes first; the client still sends', async (t) => {
  const { dial, session } = await startDialPort(t);
  let received: Promise<{ data: Buffer }> | undefined;
  const port = await tcpServer(t, (s) => {
    received = readAll(s);
    s.end('greeting');
  });
  const { stream } = await park(dial.port);
  t.strictSame(await ask(stream, { session, protocol: 'tcp', destination: `127.0.0.1:${port}` }), { ok: true });
  const { data } = await readAll(stream);
  t.equal(data.toString(), 'greeting');
  stream.end('late data');
  await eventually(() => received !== undefined, 'the destination to accept');
  t.equal((await received)?.data.toString(), 'late data', 'bytes after the destination half-closed arrive');
});

t.test('8 MiB each way, intact', async (t) => {
  const { dial, session } = await startDialPort(t);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const { stream } = await park(dial.port);
  t.strictSame(await ask(stream, { session, protocol: 'tcp', destination: `127.0.0.1:${port}` }), { ok: true });
  const payload = randomBytes(8 * 1024 * 1024);
  const got = readAll(stream);
  stream.end(payload);
  const { data } = await got;
  t.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

t.test('refusals: each answers an error with its prefix, then closes the stream', async (t) => {
  const { dial, session } = await startDialPort(t);
  const refusedPort = await closedPort();
  const cases: Array<{ name: string; header: Record<string, unknown>; want: RegExp }> = [
    { name: 'a closed port', header: { session, protocol: 'tcp', destination: `127.0.0.1:${refusedPort}` }, want: /^refused: 127\.0\.0\.1:/ },
    { name: 'an unknown session', header: { session: 'nobody', protocol: 'tcp', destination: `127.0.0.1:${refusedPort}` }, want: /^session: / },
    { name: 'no session', header: { protocol: 'tcp', destination: '10.96.0.1:80' }, want: /^invalid: / },
    { name: 'udp', header: { session, protocol: 'udp', destination: '10.96.0.10:53' }, want: /^invalid: protocol "udp"/ },
    { name: 'a name, not an address', header: { session, protocol: 'tcp', destination: 'example.com:80' }, want: /^invalid: destination/ },
  ];
  for (const c of cases) {
    const { stream, raw } = await park(dial.port);
    const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    stream.on('error', () => undefined);
    const answer = await ask(stream, c.header);
    t.match(answer, { error: c.want }, c.name);
    t.notOk('ok' in answer, `${c.name}: no ok`);
    await closed;
    t.pass(`${c.name}: the stream closed`);
  }
  t.equal(dial.active, 0);
});

t.test('no connection within the connect timeout: unreachable: ETIMEDOUT', async (t) => {
  // A socket that never connects.
  const { dial, session } = await startDialPort(t, { connectTimeoutMs: 50, dialTcp: () => new Socket() });
  const { stream } = await park(dial.port);
  stream.on('error', () => undefined);
  t.match(await ask(stream, { session, protocol: 'tcp', destination: '10.96.0.9:80' }), { error: 'unreachable: ETIMEDOUT 10.96.0.9:80' });
});

t.test('a connection that breaks on the destination side breaks the stream rather than ending it', async (t) => {
  const { dial, session } = await startDialPort(t);
  let dest: Socket | undefined;
  const port = await tcpServer(t, (s) => (dest = s));
  const { stream } = await park(dial.port);
  t.strictSame(await ask(stream, { session, protocol: 'tcp', destination: `127.0.0.1:${port}` }), { ok: true });
  const got = readAll(stream);
  await eventually(() => dest !== undefined, 'the destination to accept');
  dest?.write('partial');
  // Once those bytes are through (a reset with a write still queued goes out as a FIN).
  await new Promise((resolve) => stream.once('data', resolve));
  dest?.resetAndDestroy();
  const { error } = await got;
  t.ok(error !== undefined, 'the client sees an error, not an end');
});

t.test('a client that goes away takes its connection with it; close() drops parked streams', async (t) => {
  const { dial, session } = await startDialPort(t);
  let destClosed: Promise<void> | undefined;
  const port = await tcpServer(t, (s) => {
    destClosed = new Promise((resolve) => s.once('close', () => resolve()));
  });
  const { stream, raw } = await park(dial.port);
  t.strictSame(await ask(stream, { session, protocol: 'tcp', destination: `127.0.0.1:${port}` }), { ok: true });
  await eventually(() => destClosed !== undefined, 'the destination to accept');
  stream.on('error', () => undefined);
  raw.destroy();
  await destClosed;
  t.pass("the destination's connection closed");

  const idle = await park(dial.port);
  const idleClosed = new Promise<void>((resolve) => idle.raw.once('close', () => resolve()));
  idle.stream.on('error', () => undefined);
  await eventually(() => dial.waiting === 1, 'the stream to be parked');
  await dial.close();
  await idleClosed;
  t.pass('a parked stream is closed with the dial port');
});

t.test('GetClusterInfo reports the dial port', async (t) => {
  const clock = new FakeClock();
  const state = new State(clock);
  const cases = [
    { name: 'with a dial port', dialPort: 8082, want: 8082 },
    { name: 'without', dialPort: undefined, want: undefined },
  ];
  for (const c of cases) {
    const server = new Server();
    addToServer(server, testServiceDeps(state, clock, c.dialPort !== undefined ? { dialPort: c.dialPort } : {}));
    const listener = await listenGrpcAndHealth(server, 0, '127.0.0.1');
    const client = new ManagerClient(`127.0.0.1:${listener.port}`, credentials.createInsecure());
    const session = state.arriveAsClient({ name: 'alice@laptop', installId: 'a', product: 'cli', version: '0.1.0', resumeSessionId: '' });
    const got = await new Promise<ClusterInfo>((resolve, reject) => client.getClusterInfo(session, (err, res) => (err !== null ? reject(err) : resolve(res))));
    t.equal(got.dialPort, c.want, c.name);
    client.close();
    await listener.close();
    server.forceShutdown();
  }
  state.close();
});
