import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, renameSync, statSync, writeFileSync, existsSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import type { ManagerClient, TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { TUNNEL_CODEC_SERVICE, TunnelManagerClient } from '@telepresence-ts/proto/manager/v1/tunnel';
import t, { type Test } from 'tap';
import { TUNNEL_CHANNEL_OPTIONS } from '../../src/contracts.js';
import type { Logger } from '../../src/daemon/logger.js';
import { FLOW_STATUS, parseFlowHeader, startFlowServer, type FlowServer } from '../../src/outbound/flow-server.js';
import type { DirectStream } from '../../src/direct-stream.js';
import { ParkedStreams } from '../../src/outbound/parked-streams.js';
import { eventually } from '../fixtures/eventually.js';
import { FAKE_UNREACHABLE, fakeDialPort } from './fake-dial-port.js';

/** Destinations the fake manager treats specially. */
const UNREACHABLE = '192.0.2.1:80';
const SILENT = '192.0.2.2:80';

type OutboundCall = ServerDuplexStream<TunnelMessage, TunnelMessage>;

/**
 * A manager's Outbound as manager.proto describes it: dial on `open`, echo it or answer
 * `close {error}`, then relay (TCP with half-close; UDP one datagram per message).
 */
function outbound(opens: TunnelMessage['open'][]): (call: OutboundCall) => void {
  return (call) => {
    call.on('error', () => undefined);
    call.once('data', (first: TunnelMessage) => {
      const open = first.open;
      opens.push(open);
      if (open === undefined) return call.end();
      if (open.destination === SILENT) return;
      if (open.destination === UNREACHABLE) {
        call.write({ close: { error: 'unreachable: no route to host' } });
        return call.end();
      }
      const m = /^(?:\[(.+)\]|(.+)):(\d+)$/.exec(open.destination);
      const host = m?.[1] ?? m?.[2] ?? '';
      const port = Number(m?.[3]);
      if (open.protocol === 'udp') return relayUdp(call, open, host, port);
      return relayTcp(call, open, host, port);
    });
  };
}

function relayTcp(call: OutboundCall, open: NonNullable<TunnelMessage['open']>, host: string, port: number): void {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  let connected = false;
  let sent = false;
  let received = false;
  const finish = (): void => {
    if (sent && received) call.end();
  };
  socket.on('connect', () => {
    connected = true;
    call.write({ open });
    call.on('data', (msg: TunnelMessage) => {
      if (msg.data !== undefined && !socket.write(msg.data)) {
        call.pause();
        socket.once('drain', () => call.resume());
      }
      if (msg.close !== undefined) {
        received = true;
        socket.end();
        finish();
      }
    });
    call.on('end', () => socket.destroy());
  });
  // A cancelled or broken stream takes the cluster side's connection with it.
  call.on('cancelled', () => socket.destroy());
  call.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    if (!call.write({ data: chunk })) {
      socket.pause();
      call.once('drain', () => socket.resume());
    }
  });
  socket.on('end', () => {
    sent = true;
    call.write({ close: { error: '' } });
    finish();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (!connected) {
      call.write({ close: { error: `${err.code === 'ECONNREFUSED' ? 'refused' : 'unreachable'}: ${err.message}` } });
      call.end();
    } else call.destroy(err);
  });
}

function relayUdp(call: OutboundCall, open: NonNullable<TunnelMessage['open']>, host: string, port: number): void {
  const socket = dgram.createSocket('udp4');
  socket.connect(port, host, () => {
    call.write({ open });
    call.on('data', (msg: TunnelMessage) => {
      if (msg.data !== undefined) socket.send(msg.data);
    });
  });
  socket.on('message', (msg: Buffer) => call.write({ data: msg }));
  call.on('end', () => {
    socket.close();
    call.end();
  });
  call.on('error', () => socket.close());
}

/** A fake manager on 127.0.0.1:0 and a client of it. */
async function fakeManager(t: Test) {
  const opens: TunnelMessage['open'][] = [];
  const server = new Server({ ...TUNNEL_CHANNEL_OPTIONS });
  server.addService(TUNNEL_CODEC_SERVICE, { outbound: outbound(opens) });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client: ManagerClient = new TunnelManagerClient(`127.0.0.1:${port}`, credentials.createInsecure(), { ...TUNNEL_CHANNEL_OPTIONS });
  t.teardown(() => {
    client.close();
    server.forceShutdown();
  });
  return { server, client, opens };
}

/** A TCP server on 127.0.0.1 running `onConnection`; its port. */
async function tcpServer(t: Test, onConnection: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** Reads all of a socket until its end; with the first error if it ends otherwise. */
function readAll(s: Socket): Promise<{ data: Buffer; error?: Error | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: Error | undefined;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => (error = e));
    s.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
  });
}

interface Harness {
  readonly flows: FlowServer;
  readonly path: string;
  readonly logs: string[];
  /** Which client openOutbound uses. */
  manager: ManagerClient;
}

async function startFlows(t: Test, manager: ManagerClient, dialTimeoutMs = 300, takeParked?: () => DirectStream | undefined): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'flows.sock');
  const logs: string[] = [];
  const log: Logger = (level, message) => logs.push(`${level} ${message}`);
  const h: { manager: ManagerClient } = { manager };
  const flows = await startFlowServer(
    { openOutbound: () => h.manager.outbound(), sessionId: () => 'session-1', log, ...(takeParked !== undefined ? { takeParked } : {}) },
    { socketPath: path, dialTimeoutMs },
  );
  t.teardown(() => flows.close());
  return Object.assign(h, { flows, path, logs });
}

/**
 * The engine's side: connect, send the header line, and read the status byte (TCP). `rest` is
 * what came after the status byte once the connection closed; like the engine, it closes its own
 * side when the daemon's ends, unless `halfOpen` (then the test ends it).
 */
async function engineTcp(path: string, dst: string, halfOpen = false) {
  const socket = net.connect({ path, allowHalfOpen: true });
  socket.write(`${JSON.stringify({ proto: 'tcp', src: '10.243.254.2:51234', dst })}\n`);
  const chunks: Buffer[] = [];
  let error: Error | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e) => (error = e));
  const ended = new Promise<Buffer>((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks).subarray(1))));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  if (!halfOpen) socket.once('end', () => socket.end());
  const status = await Promise.race([
    new Promise<number>((resolve) => socket.once('data', (c: Buffer) => resolve(c[0] as number))),
    closed.then(() => undefined),
  ]);
  const rest = closed.then(() => ({ data: Buffer.concat(chunks).subarray(1), error }));
  return { socket, status, rest, ended };
}

t.test('header parsing', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['{"proto":"tcp","src":"10.243.254.2:51234","dst":"10.96.0.10:80"}', true],
    ['{"proto":"udp","src":"[fd00::2]:5353","dst":"[fd00::10]:53"}', true],
    ['{"proto":"sctp","src":"a","dst":"10.96.0.10:80"}', false],
    ['{"proto":"tcp","src":"a","dst":"10.96.0.10"}', false],
    ['{"proto":"tcp","src":"a","dst":"10.96.0.10:99999"}', false],
    ['{"proto":"tcp","src":"a","dst":"fd00::10:80"}', false],
    ['{"proto":"tcp","src":"a","dst":"example.com:80"}', false],
    ['[1,2]', false],
    ['nope', false],
  ];
  for (const [line, ok] of cases) t.equal(parseFlowHeader(line) !== undefined, ok, line);
});

t.test('TCP: the engine half-closes first, the cluster answers after', async (t) => {
  const { client, opens } = await fakeManager(t);
  // Reads everything, then answers it in upper case and closes.
  const port = await tcpServer(t, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end(Buffer.concat(chunks).toString().toUpperCase()));
  });
  const h = await startFlows(t, client);
  const mode = statSync(h.path).mode & 0o777;
  t.equal(mode, 0o600, 'the socket is for its owner only');

  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.write('hello ');
  socket.end('cluster');
  const { data, error } = await rest;
  t.equal(data.toString(), 'HELLO CLUSTER');
  t.equal(error, undefined);
  t.equal(opens.length, 1);
  t.match(opens[0], { sessionId: 'session-1', protocol: 'tcp', destination: `127.0.0.1:${port}` });
  t.match(opens[0]?.connectionId, /^[0-9a-f-]{36}$/);
  await eventually(() => h.flows.stats().activeFlows === 0, 5_000, 'the flow to end');
  t.strictSame(h.flows.stats(), { tcpFlows: 1, udpFlows: 0, fastFlows: 0, activeFlows: 0 });
});

t.test('TCP: the cluster half-closes first, the engine still sends after', async (t) => {
  const { client } = await fakeManager(t);
  let received: Promise<string> | undefined;
  const port = await tcpServer(t, (s) => {
    received = readAll(s).then((r) => r.data.toString());
    s.end('greeting');
  });
  const h = await startFlows(t, client);
  const { socket, status, rest, ended } = await engineTcp(h.path, `127.0.0.1:${port}`, true);
  t.equal(status, FLOW_STATUS.connected);
  t.equal((await ended).toString(), 'greeting', 'the cluster\'s end came through');
  socket.end('late data');
  await rest;
  await eventually(() => received !== undefined);
  t.equal(await received, 'late data', 'bytes after the cluster\'s half-close arrive');
});

t.test('TCP: many megabytes both ways at once, intact', async (t) => {
  const { client } = await fakeManager(t);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const h = await startFlows(t, client);
  const payload = randomBytes(8 * 1024 * 1024);
  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.end(payload);
  const { data } = await rest;
  t.equal(data.length, payload.length);
  t.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

t.test('TCP: a refused port answers 1, no route answers 2, silence answers 2 in time', async (t) => {
  const { client } = await fakeManager(t);
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const h = await startFlows(t, client, 300);
  const cases: Array<[string, string, number]> = [
    ['refused', `127.0.0.1:${closedPort}`, FLOW_STATUS.refused],
    ['unreachable', UNREACHABLE, FLOW_STATUS.unreachable],
    ['no answer from the manager', SILENT, FLOW_STATUS.unreachable],
  ];
  for (const [name, dst, want] of cases) {
    const started = Date.now();
    const { status, rest } = await engineTcp(h.path, dst);
    t.equal(status, want, name);
    const { data } = await rest;
    t.equal(data.length, 0, `${name}: then closed`);
    t.ok(Date.now() - started < 3_000, `${name}: in time`);
  }
  await eventually(() => h.flows.stats().activeFlows === 0);
  t.equal(h.flows.stats().tcpFlows, 3);
});

t.test('TCP: the manager going away mid-flow ends the flow; new flows work with a new manager', async (t) => {
  const first = await fakeManager(t);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const h = await startFlows(t, first.client);
  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.write('ping');
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  first.server.forceShutdown();
  const ended = await Promise.race([rest.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 5_000).unref())]);
  t.equal(ended, 'closed', 'the engine\'s connection is closed');
  await eventually(() => h.flows.stats().activeFlows === 0);

  const second = await fakeManager(t);
  h.manager = second.client;
  const again = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(again.status, FLOW_STATUS.connected, 'a new flow connects through the new manager');
  again.socket.end('pong');
  t.equal((await again.rest).data.toString(), 'pong');
});

t.test('TCP: no manager at all answers 2', async (t) => {
  const { client, server } = await fakeManager(t);
  server.forceShutdown();
  const h = await startFlows(t, client);
  const { status } = await engineTcp(h.path, '10.96.0.10:80');
  t.equal(status, FLOW_STATUS.unreachable);
});

t.test('UDP: frames both ways, split and joined anyhow', async (t) => {
  const { client, opens } = await fakeManager(t);
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg, from) => echo.send(Buffer.concat([Buffer.from('re:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => echo.close());
  const h = await startFlows(t, client);

  const socket = net.connect({ path: h.path, allowHalfOpen: true });
  const frame = (text: string): Buffer => {
    const body = Buffer.from(text);
    return Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);
  };
  const big = 'x'.repeat(1400);
  // The header and the first two datagrams in one write, the third split across two.
  const third = frame(big);
  socket.write(Buffer.concat([Buffer.from(`${JSON.stringify({ proto: 'udp', src: '10.243.254.2:5353', dst: `127.0.0.1:${echo.address().port}` })}\n`), frame('one'), frame('two'), third.subarray(0, 3)]));
  setTimeout(() => socket.write(third.subarray(3)), 20);

  const got: string[] = [];
  await new Promise<void>((resolve) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)).toString());
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (got.length === 3) resolve();
    });
  });
  t.strictSame(got.sort(), ['re:one', 're:two', `re:${big}`].sort());
  t.match(opens[0], { protocol: 'udp', destination: `127.0.0.1:${echo.address().port}` });
  t.strictSame(h.flows.stats(), { tcpFlows: 0, udpFlows: 1, fastFlows: 0, activeFlows: 1 });
  socket.end();
  await eventually(() => h.flows.stats().activeFlows === 0, 5_000, 'the UDP flow to end');
});

t.test('a bad header closes the connection and opens no stream', async (t) => {
  const { client, opens } = await fakeManager(t);
  const h = await startFlows(t, client);
  const cases: Array<[string, Buffer]> = [
    ['not JSON', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ['too long', Buffer.alloc(600, 0x61)],
    ['unknown protocol', Buffer.from('{"proto":"icmp","src":"a","dst":"10.0.0.1:1"}\n')],
  ];
  for (const [name, bytes] of cases) {
    const socket = net.connect({ path: h.path });
    const closed = readAll(socket);
    socket.write(bytes);
    const { data } = await closed;
    t.equal(data.length, 0, `${name}: closed without a status`);
  }
  // The connection ending before the header's end of line.
  const early = net.connect({ path: h.path });
  const closed = readAll(early);
  early.end('{"proto":"tcp"');
  t.equal((await closed).data.length, 0, 'cut short: closed');
  t.equal(opens.length, 0);
  t.strictSame(h.flows.stats(), { tcpFlows: 0, udpFlows: 0, fastFlows: 0, activeFlows: 0 });
});

t.test('close ends open flows and removes the socket file', async (t) => {
  const { client } = await fakeManager(t);
  let clusterSide: Promise<unknown> | undefined;
  const port = await tcpServer(t, (s) => {
    clusterSide = readAll(s);
    s.pipe(s);
  });
  const h = await startFlows(t, client);
  const { status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  t.equal(h.flows.stats().activeFlows, 1);
  await h.flows.close();
  await rest;
  t.pass('the open flow was ended');
  await eventually(() => clusterSide !== undefined);
  await clusterSide;
  t.pass('and its stream: the cluster side was closed too');
  t.notOk(existsSync(h.path), 'the socket file is gone');
  await h.flows.close();
});

t.test('a stale socket file is replaced; a live one or a plain file is refused', async (t) => {
  const { client } = await fakeManager(t);
  const dir = mkdtempSync(join(tmpdir(), 'flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const opts = { openOutbound: () => client.outbound(), sessionId: () => 's', log: (() => undefined) as Logger };

  // A socket file nobody listens on: a server's socket, moved away before it closed.
  const stale = join(dir, 'stale.sock');
  const old = net.createServer();
  await new Promise<void>((resolve) => old.listen(join(dir, 'tmp.sock'), () => resolve()));
  renameSync(join(dir, 'tmp.sock'), stale);
  await new Promise<void>((resolve) => old.close(() => resolve()));
  t.ok(statSync(stale).isSocket());
  const flows = await startFlowServer(opts, { socketPath: stale });
  t.equal(statSync(stale).mode & 0o777, 0o600);

  await t.rejects(startFlowServer(opts, { socketPath: stale }), { name: 'TpError', code: 'flow-socket-busy', category: 'config' });
  await flows.close();

  const plain = join(dir, 'plain');
  writeFileSync(plain, 'not a socket');
  await t.rejects(startFlowServer(opts, { socketPath: plain }), { name: 'TpError', code: 'flow-socket-path', category: 'config' });
  t.ok(existsSync(plain), 'left alone');
});

/** Streams parked at a fake dial port, and the flow server taking them. */
async function fastPath(t: Test, size = 2) {
  const { client, opens } = await fakeManager(t);
  const dial = await fakeDialPort(t);
  const pool = new ParkedStreams({ open: () => dial.open(), log: () => undefined, size, backoff: { initialMs: 5, maxMs: 20 } });
  t.teardown(() => pool.close());
  pool.start();
  await pool.whenParked(size);
  const h = await startFlows(t, client, 300, () => pool.take());
  return { h, dial, pool, opens };
}

t.test('fast path: a parked stream carries the flow, half-closes both ways, and no Outbound call is made', async (t) => {
  const { h, dial, opens } = await fastPath(t);
  let received: Promise<string> | undefined;
  const port = await tcpServer(t, (s) => {
    received = readAll(s).then((r) => r.data.toString());
    s.write('greeting');
    s.end();
  });
  const { socket, status, rest, ended } = await engineTcp(h.path, `127.0.0.1:${port}`, true);
  t.equal(status, FLOW_STATUS.connected);
  t.equal((await ended).toString(), 'greeting', "the cluster's half-close came through");
  socket.end('late data');
  const { error } = await rest;
  t.equal(error, undefined);
  await eventually(() => received !== undefined);
  t.equal(await received, 'late data', "the engine's bytes after the cluster's end arrive, then its end");
  t.strictSame(dial.headers, [{ session: 'session-1', protocol: 'tcp', destination: `127.0.0.1:${port}` }]);
  t.equal(opens.length, 0, 'no Outbound call');
  await eventually(() => h.flows.stats().activeFlows === 0);
  t.match(h.flows.stats(), { tcpFlows: 1, fastFlows: 1 });
});

t.test('fast path: many megabytes both ways, intact', async (t) => {
  const { h } = await fastPath(t);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const payload = randomBytes(8 * 1024 * 1024);
  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.end(payload);
  const { data } = await rest;
  t.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

t.test('fast path: the manager\'s errors become status bytes', async (t) => {
  const { h, opens } = await fastPath(t, 2);
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const cases: Array<[string, string, number]> = [
    ['refused', `127.0.0.1:${closedPort}`, FLOW_STATUS.refused],
    ['unreachable', FAKE_UNREACHABLE, FLOW_STATUS.unreachable],
  ];
  for (const [name, dst, want] of cases) {
    const { status, rest } = await engineTcp(h.path, dst);
    t.equal(status, want, name);
    t.equal((await rest).data.length, 0, `${name}: then closed`);
  }
  t.equal(opens.length, 0, 'answered on the fast path');
  t.equal(h.flows.stats().fastFlows, 2);
});

t.test('fast path: a parked stream that died before answering leaves the flow to an Outbound call', async (t) => {
  const { h, dial, opens } = await fastPath(t, 1);
  const port = await tcpServer(t, (s) => s.pipe(s));
  // The manager goes away; the parked stream is cut as the flow starts (the fake refuses new ones).
  await dial.kill();
  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.end('via grpc');
  t.equal((await rest).data.toString(), 'via grpc');
  t.equal(opens.length, 1, 'an Outbound call carried it');
});

t.test('fast path: none parked, the flow takes an Outbound call', async (t) => {
  const { client, opens } = await fakeManager(t);
  const h = await startFlows(t, client, 300, () => undefined);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const { socket, status, rest } = await engineTcp(h.path, `127.0.0.1:${port}`);
  t.equal(status, FLOW_STATUS.connected);
  socket.end('x');
  t.equal((await rest).data.toString(), 'x');
  t.equal(opens.length, 1);
  t.match(h.flows.stats(), { tcpFlows: 1, fastFlows: 0 });
});

t.test('fast path: the manager going away mid-flow closes the engine\'s connection outright', async (t) => {
  const { h, dial } = await fastPath(t, 1);
  const port = await tcpServer(t, (s) => s.pipe(s));
  const { socket, status, ended } = await engineTcp(h.path, `127.0.0.1:${port}`, true);
  t.equal(status, FLOW_STATUS.connected);
  socket.write('ping');
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  await dial.kill();
  await ended;
  t.notOk(socket.writableEnded, 'the engine had not finished sending');
  // A half-close would keep the daemon's side open for the engine's remaining bytes; the daemon
  // closed it outright, which the engine passes on as a reset.
  await eventually(() => h.flows.stats().activeFlows === 0, 5_000, "the daemon's side to close without waiting for the engine");
  socket.destroy();
});
