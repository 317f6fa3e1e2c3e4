/** DNS messages built by hand and a DNS server on 127.0.0.1 (UDP and TCP), for LookupDNS's tests. */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer } from 'node:net';
import type { Test } from 'tap';

/** A question for `name` type A, class IN, with message ID `id` (RFC 1035 4.1). */
export function dnsQuery(id: number, name: string): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** The answer to `query`: QR set, one A record `ip` pointing back at the question's name; `tc` sets TC. */
export function dnsAnswer(query: Buffer, ip: string, tc = false): Buffer {
  const out = Buffer.from(query);
  out.writeUInt16BE(0x8180 | (tc ? 0x0200 : 0), 2); // QR, RD, RA (and TC)
  out.writeUInt16BE(1, 6); // ANCOUNT
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  rr.writeUInt16BE(1, 2); // A
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(30, 6); // TTL
  rr.writeUInt16BE(4, 10);
  ip.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
  return Buffer.concat([out, rr]);
}

interface Responder {
  readonly port: number;
  /** Datagrams received, and TCP messages received (length prefix removed). */
  readonly udp: Buffer[];
  readonly tcp: Buffer[];
}

/**
 * A DNS server on 127.0.0.1 (UDP and TCP on the same port) whose UDP answer `udpAnswer` builds
 * (an array: several datagrams, in order; [] for none) and whose TCP answer is the full one.
 */
export async function startResponder(t: Test, udpAnswer: (q: Buffer) => Buffer[], tcpAnswer = (q: Buffer) => dnsAnswer(q, '10.96.0.1')): Promise<Responder> {
  const udp: Buffer[] = [];
  const tcp: Buffer[] = [];
  const tcpServer: TcpServer = createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        tcp.push(Buffer.from(q));
        const a = tcpAnswer(q);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        // Split in two writes to check that the client reassembles.
        conn.write(Buffer.concat([len, a.subarray(0, 5)]));
        setTimeout(() => conn.write(a.subarray(5)), 5);
      }
    });
  });
  await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
  const port = (tcpServer.address() as { port: number }).port;
  const socket: UdpSocket = createSocket('udp4');
  socket.on('message', (msg, from) => {
    udp.push(msg);
    for (const a of udpAnswer(msg)) socket.send(a, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve());
  });
  t.teardown(() => {
    socket.close();
    tcpServer.close();
  });
  return { port, udp, tcp };
}
