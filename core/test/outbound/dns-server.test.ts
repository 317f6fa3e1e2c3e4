import dgram, { type RemoteInfo } from 'node:dgram';
import net from 'node:net';
import t, { type Test } from 'tap';
import * as dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/daemon/logger.js';
import { startDnsServer, type DnsServer } from '../../src/outbound/dns-server.js';
import { parseResolvConf } from '../../src/outbound/resolv-conf.js';
import { a, authority, decode, query, RCODES } from './dns-fakes.js';

/** A DNS server on 127.0.0.1:0 answering from `records`, noting the source port of each question. */
async function fakeUpstream(t: Test, records = [a('example.com', '93.184.216.34'), a('printer.lan', '192.168.1.50')]) {
  const answer = authority(records, 'lan');
  const sources: number[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    sources.push(from.port);
    // Answers in reverse order of arrival when two are in flight: IDs, not order, must match them.
    const delay = decode(msg).questions?.[0]?.name === 'printer.lan' ? 30 : 0;
    setTimeout(() => socket.send(answer(msg), from.port, from.address), delay);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { port: socket.address().port, sources };
}

/** One question over UDP; the response, or undefined after 2 s. */
async function askUdp(port: number, msg: Buffer): Promise<Buffer | undefined> {
  const socket = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 2_000);
      socket.once('message', (response: Buffer) => {
        clearTimeout(timer);
        resolve(response);
      });
      socket.send(msg, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

async function start(t: Test, upstreamPort: number, askCluster = authority([a('orders.shop.svc.cluster.local', '10.96.0.5')])): Promise<DnsServer> {
  // The daemon reads /etc/resolv.conf; a test gives the fake upstream's port with its address.
  const conf = parseResolvConf(`nameserver 127.0.0.1\nsearch lan\n`);
  const server = await startDnsServer({
    upstreamPort: 0,
    askCluster: (q) => Promise.resolve(askCluster(q)),
    config: {
      namespace: 'shop',
      clusterDomain: 'cluster.local',
      routedSubnets: ['10.96.0.0/12'],
      nameservers: conf.nameservers.map((ns) => `${ns}:${upstreamPort}`),
      timeouts: { clusterMs: 300, upstreamMs: 300, totalMs: 800 },
    },
    log: silentLogger,
  });
  t.teardown(() => server.close());
  return server;
}

t.test('UDP: cluster names from the cluster, others from upstream, sent from the upstream port', async (t) => {
  const upstream = await fakeUpstream(t);
  const server = await start(t, upstream.port);
  t.ok(server.port() > 0);
  t.ok(server.upstreamPort() > 0);
  t.not(server.upstreamPort(), server.port());

  const cluster = decode(await askUdp(server.port(), query('orders', 'A', { id: 11 })));
  t.equal(cluster.id, 11);
  t.strictSame(cluster.answers?.map((r) => [r.name, 'data' in r ? r.data : undefined]), [['orders', '10.96.0.5']]);

  const outside = decode(await askUdp(server.port(), query('example.com', 'A', { id: 12 })));
  t.equal(outside.id, 12);
  t.strictSame(outside.answers?.map((r) => [r.name, 'data' in r ? r.data : undefined]), [['example.com', '93.184.216.34']]);

  t.strictSame(upstream.sources, [server.upstreamPort()], 'upstream questions leave from the upstream port');
  t.strictSame(server.stats(), { clusterQueries: 1, upstreamQueries: 1, cacheHits: 0 });
});

t.test('UDP: two clients with the same ID at once each get their own answer', async (t) => {
  const upstream = await fakeUpstream(t);
  const server = await start(t, upstream.port);
  const [slow, fast] = await Promise.all([
    askUdp(server.port(), query('printer.lan', 'A', { id: 5 })),
    askUdp(server.port(), query('example.com', 'A', { id: 5 })),
  ]);
  t.equal(decode(slow).answers?.[0]?.name, 'printer.lan');
  t.equal(decode(fast).answers?.[0]?.name, 'example.com');
  t.equal(decode(slow).id, 5);
  t.equal(decode(fast).id, 5);
});

t.test('UDP: a silent upstream gives SERVFAIL; garbage gives FORMERR', async (t) => {
  // A port that nothing answers on: a socket bound and left to drop what comes.
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => sink.close(() => resolve())));
  const server = await start(t, sink.address().port);
  const r = decode(await askUdp(server.port(), query('example.com', 'A', { id: 3 })));
  t.equal(r.rcodeNumber, RCODES.SERVFAIL);
  t.equal(r.id, 3);
  const bad = decode(await askUdp(server.port(), Buffer.from([0, 4, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff])));
  t.equal(bad.rcodeNumber, RCODES.FORMERR);
  t.equal(bad.id, 4);
});

t.test('TCP on the same port, two queries on one connection', async (t) => {
  const upstream = await fakeUpstream(t);
  const server = await start(t, upstream.port);
  t.ok(server.servesTcp(), 'TCP is served');
  const socket = net.connect(server.port(), '127.0.0.1');
  t.teardown(() => socket.destroy());
  const frame = (msg: Buffer): Buffer => Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);
  // Both in one write, the second split oddly, to exercise the framing.
  const both = Buffer.concat([frame(query('orders', 'A', { id: 21 })), frame(query('example.com', 'A', { id: 22 }))]);
  socket.write(both.subarray(0, 5));
  socket.write(both.subarray(5));
  const answers = await new Promise<Map<number, dnsPacket.DecodedPacket>>((resolve) => {
    let buf = Buffer.alloc(0);
    const got = new Map<number, dnsPacket.DecodedPacket>();
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        got.set(msg.id ?? -1, msg);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (got.size === 2) resolve(got);
    });
  });
  t.equal(answers.get(21)?.answers?.[0]?.name, 'orders');
  t.equal(answers.get(22)?.answers?.[0]?.name, 'example.com');
});

t.test('a fixed upstream port is used as given, and close frees both ports', async (t) => {
  const upstream = await fakeUpstream(t);
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, () => resolve()));
  const fixed = probe.address().port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const server = await startDnsServer({
    upstreamPort: fixed,
    askCluster: () => Promise.reject(new Error('unused')),
    config: { namespace: 'shop', clusterDomain: 'cluster.local', routedSubnets: [], nameservers: [`127.0.0.1:${upstream.port}`] },
    log: silentLogger,
  });
  t.equal(server.upstreamPort(), fixed);
  await askUdp(server.port(), query('example.com'));
  t.strictSame(upstream.sources, [fixed]);
  const port = server.port();
  await server.close();
  await server.close();
  // Both ports are free again: binding them works.
  for (const p of [port, fixed]) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(p, () => resolve());
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
    t.pass(`port ${p} is free`);
  }
});

t.test('an upstream port in use is an error at start', async (t) => {
  const taken = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => taken.bind(0, () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  await t.rejects(
    startDnsServer({
      upstreamPort: taken.address().port,
      askCluster: () => Promise.reject(new Error('unused')),
      config: { namespace: 'shop', clusterDomain: 'cluster.local', routedSubnets: [], nameservers: [] },
      log: silentLogger,
    }),
    { code: 'EADDRINUSE' },
  );
});

t.test('closing with a query in flight drops its answer quietly', async (t) => {
  const sink = dgram.createSocket('udp4');
  const asked = new Promise<void>((resolve) => sink.once('message', () => resolve()));
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => sink.close(() => resolve())));
  const server = await start(t, sink.address().port);
  const client = dgram.createSocket('udp4');
  t.teardown(() => client.close());
  client.send(query('example.com'), server.port(), '127.0.0.1');
  await asked;
  await server.close();
  // The resolver's upstream wait ends at once on close; its SERVFAIL must not be sent (or throw).
  await new Promise((r) => setTimeout(r, 100));
  t.strictSame(server.stats(), { clusterQueries: 0, upstreamQueries: 1, cacheHits: 0 });
});
