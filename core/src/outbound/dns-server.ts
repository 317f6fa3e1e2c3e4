/**
 * The sockets around DnsResolver: the server that the network daemon's UDP/53 redirect points at
 * (UDP on 127.0.0.1, and TCP on the same port number for clients that retry a truncated answer),
 * and the one socket that asks the workstation's own nameservers.
 *
 * That upstream socket is bound to a fixed local port (`upstreamPort`) because the redirect sends
 * every UDP/53 packet aimed at those nameservers to us, except the ones from that source port:
 * questions sent from any other port would come straight back to this server, forever.
 */
import dgram, { type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import net, { isIP, type Server, type Socket } from 'node:net';
import type { Logger } from '../daemon/logger.js';
import { DnsResolver, type DnsResolverConfig, type DnsStats, type Nameserver } from './dns-resolver.js';

export interface DnsServerOptions {
  /** Where the resolver listens; 127.0.0.1 by default (the redirect's target). */
  readonly host?: string | undefined;
  /** Its port; 0 (any free one) by default. */
  readonly port?: number | undefined;
  /**
   * The local port that upstream questions leave from; the network daemon exempts it from the
   * redirect (OutboundConfig.dns_upstream_port). 0 picks one, which `upstreamPort()` reports.
   */
  readonly upstreamPort: number;
  /** Answers cluster questions (the daemon: Manager.LookupDNS with the session). */
  readonly askCluster: (query: Buffer) => Promise<Buffer>;
  readonly config: DnsResolverConfig;
  readonly log: Logger;
}

export interface DnsServer {
  readonly resolver: DnsResolver;
  /** The UDP (and TCP) port the resolver answers on. */
  port(): number;
  /** The local port upstream questions leave from. */
  upstreamPort(): number;
  /** Whether TCP is served on `port()` too (it is not when that port was taken for TCP). */
  servesTcp(): boolean;
  stats(): DnsStats;
  close(): Promise<void>;
}

/** How long a TCP client may stay connected without asking anything. */
const TCP_IDLE_MS = 10_000;

/** Starts the resolver's sockets; rejects when the UDP port or the upstream port cannot be bound. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const { log } = options;
  const upstream = await UpstreamSocket.open(options.upstreamPort);
  const resolver = new DnsResolver(
    { askCluster: options.askCluster, askUpstream: (query, server, timeoutMs) => upstream.ask(query, server, timeoutMs) },
    options.config,
  );

  const udp = dgram.createSocket('udp4');
  try {
    await bindUdp(udp, options.port ?? 0, options.host ?? '127.0.0.1');
  } catch (err) {
    upstream.close();
    throw err;
  }
  const { port, address } = udp.address();
  udp.on('error', (err) => log('warn', `dns: ${err.message}`));
  let closed = false;
  udp.on('message', (msg: Buffer, from: RemoteInfo) => {
    void resolver.resolve(msg).then((response) => {
      // A query still in flight when the server closed has nowhere to go (send would throw).
      if (response === undefined || closed) return;
      udp.send(response, from.port, from.address, (err) => err && log('debug', `dns: answer to ${from.address}:${from.port}: ${err.message}`));
    });
  });

  const tcp = await listenTcp(address, port, resolver).catch((err: unknown) => {
    log('info', `dns: no TCP on port ${port}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  });

  return {
    resolver,
    port: () => port,
    upstreamPort: () => upstream.port,
    servesTcp: () => tcp !== undefined,
    stats: () => resolver.stats(),
    close: async () => {
      if (closed) return;
      closed = true;
      upstream.close();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        tcp === undefined ? Promise.resolve() : tcp.close(),
      ]);
    },
  };
}

function bindUdp(socket: UdpSocket, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/** DNS over TCP (RFC 7766): each message with a 2-byte length; several may be in flight. */
async function listenTcp(host: string, port: number, resolver: DnsResolver): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const query = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        void resolver.resolve(query).then((response) => {
          if (response === undefined || socket.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(response.length, 0);
          socket.write(Buffer.concat([head, response]));
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Pending {
  readonly id: number;
  readonly server: Nameserver;
  readonly resolve: (response: Buffer) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * The fixed-port socket (one per address family, on the same port number) that asks upstream.
 * Each question leaves with an ID of ours, unique among those in flight, so that answers to
 * different clients that chose the same ID are not mixed up; the answer gets the client's back.
 */
class UpstreamSocket {
  private readonly pending = new Map<number, Pending>();
  private v6: UdpSocket | undefined;
  private v6Opening: Promise<UdpSocket> | undefined;
  private closed = false;

  private constructor(
    private readonly v4: UdpSocket,
    readonly port: number,
  ) {
    v4.on('message', (msg: Buffer, from: RemoteInfo) => this.received(msg, from));
    v4.on('error', () => undefined);
  }

  static async open(port: number): Promise<UpstreamSocket> {
    const v4 = dgram.createSocket('udp4');
    await bindUdp(v4, port);
    return new UpstreamSocket(v4, v4.address().port);
  }

  async ask(query: Buffer, server: Nameserver, timeoutMs: number): Promise<Buffer> {
    if (this.closed) throw new Error('resolver closed');
    const socket = isIP(server.address.split('%')[0] ?? '') === 6 ? await this.socket6() : this.v4;
    const clientId = query.readUInt16BE(0);
    let id = randomInt(0x10000);
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from ${server.address}:${server.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { id, server, resolve, reject, timer });
      socket.send(out, server.port, server.address, (err) => {
        if (err) this.settle(id, undefined, err);
      });
    });
    const response = Buffer.from(answer);
    response.writeUInt16BE(clientId, 0);
    return response;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, new Error('resolver closed'));
    this.v4.close();
    this.v6?.close();
  }

  private received(msg: Buffer, from: RemoteInfo): void {
    if (msg.length < 12) return;
    const p = this.pending.get(msg.readUInt16BE(0));
    // Only the server asked may answer (a zone in a link-local address may be spelt differently).
    if (p === undefined || p.server.port !== from.port || p.server.address.split('%')[0] !== from.address.split('%')[0]) return;
    this.settle(p.id, msg, undefined);
  }

  private settle(id: number, msg: Buffer | undefined, err: Error | undefined): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (msg !== undefined) p.resolve(msg);
    else p.reject(err ?? new Error('failed'));
  }

  /** The IPv6 socket, bound on first use to the same port number as the IPv4 one. */
  private socket6(): Promise<UdpSocket> {
    if (this.v6 !== undefined) return Promise.resolve(this.v6);
    this.v6Opening ??= (async () => {
      const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
      await bindUdp(s, this.port);
      s.on('message', (msg: Buffer, from: RemoteInfo) => this.received(msg, from));
      s.on('error', () => undefined);
      if (this.closed) s.close();
      this.v6 = s;
      return s;
    })();
    return this.v6Opening;
  }
}
