/**
 * LookupDNS's centre: one DNS message asked, unchanged, of the cluster's DNS server, and its answer
 * returned unchanged. The workstation's resolver builds the question (with the search path it
 * chose) and reads the answer; the manager only carries it into the cluster.
 */
import { TpError } from '@telepresence-ts/core/errors';
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';

/** The DNS port (RFC 1035). */
export const DNS_PORT = 53;
/**
 * How long each attempt (UDP, then TCP after a truncated answer) waits. A cluster DNS server
 * answers in milliseconds, or forwards upstream and answers within a second or two; a
 * workstation's resolver retries by itself, so a lost datagram must not hold the call longer.
 */
export const DNS_TIMEOUT_MS = 2000;
/** The DNS header: ID, flags, four counts of 2 bytes each. */
const HEADER_BYTES = 12;
/** The TC (truncated) bit of the header's third byte. */
const TC_BIT = 0x02;
/** The largest answer over UDP that we accept (EDNS0 allows up to 64 KiB). */
const MAX_MESSAGE = 65535;

export interface DnsServer {
  readonly address: string;
  readonly port: number;
}

const timeoutError = (server: DnsServer, transport: string): TpError =>
  new TpError('cluster', 'dns-timeout', `the cluster DNS server ${server.address}:${server.port} did not answer over ${transport} within ${DNS_TIMEOUT_MS / 1000} s`);

const failedError = (server: DnsServer, transport: string, err: unknown): TpError =>
  new TpError('cluster', 'dns-failed', `cannot ask the cluster DNS server ${server.address}:${server.port} over ${transport}: ${(err as Error).message}`, { cause: err });

/**
 * One question over UDP, on a socket of its own. A socket per question costs a bind and a close
 * per lookup; in exchange there is no ID map to keep, an answer can only be for the question of
 * its socket (the kernel's random source port does the work of matching), and two workstations
 * asking with the same ID cannot collide. Lookups are a few per connection, not per packet.
 */
function askUdp(server: DnsServer, query: Uint8Array, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
    let finished = false;
    const done = (err: Error | undefined, answer?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      if (err !== undefined) reject(err);
      else resolve(answer as Buffer);
    };
    const timer = setTimeout(() => done(timeoutError(server, 'UDP')), timeoutMs);
    socket.on('message', (msg: Buffer, from) => {
      // Only an answer from the server's port, to this question: anything else is stale or forged.
      if (from.port !== server.port || msg.length < HEADER_BYTES || msg[0] !== query[0] || msg[1] !== query[1]) return;
      done(undefined, msg);
    });
    socket.on('error', (err) => done(failedError(server, 'UDP', err)));
    socket.send(query, server.port, server.address, (err) => {
      if (err !== null) done(failedError(server, 'UDP', err));
    });
  });
}

/** One question over TCP: each message is preceded by its length in two bytes (RFC 1035 4.2.2). */
function askTcp(server: DnsServer, query: Uint8Array, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.address, port: server.port, noDelay: true });
    let received = Buffer.alloc(0);
    let finished = false;
    const done = (err: Error | undefined, answer?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(answer as Buffer);
    };
    const timer = setTimeout(() => done(timeoutError(server, 'TCP')), timeoutMs);
    const length = Buffer.alloc(2);
    length.writeUInt16BE(query.length);
    socket.write(Buffer.concat([length, query]));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // A server may answer several questions on one connection; we asked one.
      while (received.length >= 2) {
        const size = received.readUInt16BE(0);
        if (received.length < 2 + size) return;
        const msg = received.subarray(2, 2 + size);
        received = received.subarray(2 + size);
        if (msg.length >= HEADER_BYTES && msg[0] === query[0] && msg[1] === query[1]) {
          done(undefined, Buffer.from(msg));
          return;
        }
      }
    });
    socket.on('end', () => done(failedError(server, 'TCP', new Error('the server closed the connection without an answer'))));
    socket.on('error', (err) => done(failedError(server, 'TCP', err)));
  });
}

/** Throws `bad-dns-query` (user) unless `query` can be a DNS message: a header at least. */
export function checkDnsQuery(query: Uint8Array): void {
  if (query.length < HEADER_BYTES || query.length > MAX_MESSAGE) {
    throw new TpError('user', 'bad-dns-query', `a DNS query is a DNS message of ${HEADER_BYTES} to ${MAX_MESSAGE} bytes, not ${query.length}`, {
      hint: 'send one DNS message in wire format (RFC 1035), header included',
    });
  }
}

/**
 * Asks `server` the DNS message `query` and returns its answer, matched by the message ID. An
 * answer with the TC bit (too big for UDP) is asked again over TCP, as a stub resolver would.
 * Errors: `bad-dns-query` (user) for a message shorter than a DNS header; `dns-timeout` and
 * `dns-failed` (cluster).
 */
export async function askDns(server: DnsServer, query: Uint8Array, timeoutMs = DNS_TIMEOUT_MS): Promise<Buffer> {
  checkDnsQuery(query);
  const answer = await askUdp(server, query, timeoutMs);
  if (((answer[2] as number) & TC_BIT) === 0) return answer;
  return askTcp(server, query, timeoutMs);
}
