/**
 * The user daemon's DNS resolver for outbound access: which names the cluster answers, and how.
 * It takes one DNS query (wire format) and gives back the response to send; the sockets live in
 * dns-server.ts, the cluster's DNS server behind `askCluster` (Manager.LookupDNS), the workstation's
 * own nameservers behind `askUpstream`.
 *
 * A name is resolved as the connected namespace's pods resolve it (search path
 * `<ns>.svc.<domain> svc.<domain> <domain>`), so `orders`, `orders.shop` and
 * `orders.shop.svc.cluster.local` all reach the Service from the workstation:
 *
 * 1. The cluster domain itself and every name under it: the cluster's answer as it is, NXDOMAIN
 *    included. Never upstream: a cluster name must not leak to, or be answered by, the
 *    workstation's resolver.
 * 2. Reverse (PTR) names of addresses inside the routed subnets: the cluster as it is. Other
 *    reverse names go upstream only (no search candidate of an `.arpa` name exists).
 * 3. Names whose last label is an excluded public suffix (`com io net org ru`, as Telepresence):
 *    upstream only, so that the workstation's everyday lookups cost no cluster round trip.
 * 4. Anything else: the search candidates in order (see `searchCandidates`); the first that the
 *    cluster answers NOERROR wins, with or without records, renamed back to the name asked.
 *    NODATA must win too: glibc asks A and AAAA of a Service; an AAAA NODATA tells it to use the
 *    A record, where passing the AAAA on upstream could yield a different answer or a timeout.
 *    When every candidate is NXDOMAIN, the name is not the cluster's: ask upstream.
 *
 * The cluster failing (error, timeout, SERVFAIL, REFUSED) gives SERVFAIL: we cannot tell whether
 * the name was the cluster's, and guessing upstream could answer a cluster name wrongly.
 */
import { isIP } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { systemClock, type Clock } from '../clock.js';
import { contains, tryParseCidr, type Cidr } from './cidr.js';

/** Telepresence's default: names under these top-level labels are never the cluster's. */
export const DEFAULT_EXCLUDED_SUFFIXES: readonly string[] = ['com', 'io', 'net', 'org', 'ru'];

/** Where upstream questions go: an address and a port (53 unless a test says otherwise). */
export interface Nameserver {
  readonly address: string;
  readonly port: number;
}

/**
 * Reads a nameserver as resolv-conf.ts gives it ("10.0.0.2", "fe80::1%eth0") or with a port
 * ("127.0.0.1:5353", "[::1]:5353", for tests); undefined when it is neither.
 */
export function parseNameserver(text: string): Nameserver | undefined {
  const plain = text.trim();
  if (isIP(plain.split('%')[0] ?? '') !== 0) return { address: plain, port: 53 };
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(plain) ?? /^([^:]+):(\d{1,5})$/.exec(plain);
  if (m === null) return undefined;
  const address = m[1] as string;
  const port = Number(m[2]);
  if (isIP(address.split('%')[0] ?? '') === 0 || port < 1 || port > 65535) return undefined;
  return { address, port };
}

/** The resolver's I/O. */
export interface DnsResolverPorts {
  /** Asks the cluster's DNS server one query, unchanged (the daemon: Manager.LookupDNS). */
  readonly askCluster: (query: Buffer) => Promise<Buffer>;
  /**
   * Asks one upstream nameserver over UDP and resolves with its response to this query (matched
   * by ID), or rejects after `timeoutMs`. dns-server.ts sends from its fixed upstream port.
   */
  readonly askUpstream: (query: Buffer, server: Nameserver, timeoutMs: number) => Promise<Buffer>;
  /** For the caches' expiry; the system clock by default. */
  readonly clock?: Clock | undefined;
}

export interface DnsResolverConfig {
  /** The connected namespace. */
  readonly namespace: string;
  /** The cluster's DNS domain, e.g. "cluster.local" (ClusterInfo.cluster_domain). */
  readonly clusterDomain: string;
  /** The subnets routed to the cluster, whose reverse names the cluster answers ("10.96.0.0/12" or parsed). */
  readonly routedSubnets: readonly (Cidr | string)[];
  /** The workstation's nameservers, as parseResolvConf gives them (or "ip:port", see parseNameserver). */
  readonly nameservers: readonly string[];
  /** Top-level labels never asked of the cluster; DEFAULT_EXCLUDED_SUFFIXES when not given. */
  readonly excludedSuffixes?: readonly string[] | undefined;
  /** Timeouts, for tests; the defaults are in DEFAULT_TIMEOUTS. */
  readonly timeouts?: Partial<DnsTimeouts> | undefined;
}

export interface DnsTimeouts {
  /** One question to the cluster. */
  readonly clusterMs: number;
  /** One question to one upstream nameserver. */
  readonly upstreamMs: number;
  /** Everything one query may take, cluster candidates and upstream together. */
  readonly totalMs: number;
}

/**
 * glibc waits 5 s for an answer before it asks again (resolv.conf `timeout:5`): a query we cannot
 * answer must get SERVFAIL before that, so the whole of one query gets 4 s. 2 s per upstream
 * server is the usual per-try budget of a stub resolver; a cluster question crosses the manager
 * and takes milliseconds when the cluster is well, so 2 s means it is not.
 */
export const DEFAULT_TIMEOUTS: DnsTimeouts = { clusterMs: 2_000, upstreamMs: 2_000, totalMs: 4_000 };

/** Counters for `status`. */
export interface DnsStats {
  /** Questions sent to the cluster's DNS server. */
  readonly clusterQueries: number;
  /** Questions sent to an upstream nameserver (one per server tried). */
  readonly upstreamQueries: number;
  /** Queries answered from the cache. */
  readonly cacheHits: number;
}

/** The longest a positive answer is reused, whatever its TTL says. */
const POSITIVE_CACHE_MAX_MS = 30_000;
/** How long a name that no search candidate matched goes straight upstream. */
const NEGATIVE_CACHE_MS = 5_000;
/** Bounds on the caches: a runaway client must not grow them without limit. */
const CACHE_MAX_ENTRIES = 1_000;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const;
const RD = dnsPacket.RECURSION_DESIRED;
const RA = dnsPacket.RECURSION_AVAILABLE;

/** Thrown (internally) when a path runs out of time or its peer fails. */
class DnsFailure extends Error {}

interface CacheEntry {
  /** The encoded response with ID 0; the ID and RD bit are set per client. */
  readonly response: Buffer;
  readonly expires: number;
}

/** The response code of an encoded message; undefined when it is too short to have one. */
function rcodeOf(msg: Buffer): number | undefined {
  return msg.length >= 12 ? (msg[3] as number) & 0x0f : undefined;
}

/** `msg` with the client's ID and RD bit, as a fresh buffer (cached bytes stay as they are). */
function forClient(msg: Buffer, id: number, rd: boolean): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id, 0);
  out[2] = rd ? (out[2] as number) | 0x01 : (out[2] as number) & 0xfe;
  return out;
}

function lower(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * The address a reverse name stands for ("4.3.2.1.in-addr.arpa" is 1.2.3.4; ip6.arpa takes all 32
 * nibbles); undefined for partial or malformed names.
 */
export function reverseNameAddress(name: string): string | undefined {
  const n = lower(name);
  if (n.endsWith('.in-addr.arpa')) {
    const parts = n.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
    return parts.reverse().map(Number).join('.');
  }
  if (n.endsWith('.ip6.arpa')) {
    const nibbles = n.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((x) => /^[0-9a-f]$/.test(x))) return undefined;
    const hex = nibbles.reverse().join('');
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
    return groups.join(':');
  }
  return undefined;
}

/**
 * The names asked of the cluster for `name`, in order, as a pod of `namespace` would (its search
 * path is `<ns>.svc.<d> svc.<d> <d>`).
 *
 * A single label ("orders") gets only `orders.<ns>.svc.<d>`. `orders.svc.<d>` would name a
 * namespace, not a Service, and CoreDNS answers an existing namespace NOERROR with no records (an
 * empty non-terminal): that NODATA would win and hide the name's real answer upstream (or the
 * Service of that name in another namespace is not what a pod here would reach either).
 * `orders.<d>` is never a record. Two or more labels ("orders.shop", "web-0.db.shop",
 * "10-1-2-3.shop.pod") take the three in pod order.
 */
export function searchCandidates(name: string, namespace: string, clusterDomain: string): string[] {
  const n = lower(name);
  const d = lower(clusterDomain);
  const first = `${n}.${lower(namespace)}.svc.${d}`;
  if (!n.includes('.')) return [first];
  return [first, `${n}.svc.${d}`, `${n}.${d}`];
}

/** The decision for one question, before any I/O: exported for tests and logs. */
export type DnsRoute =
  | { readonly kind: 'cluster' }
  | { readonly kind: 'upstream' }
  | { readonly kind: 'search'; readonly candidates: readonly string[] };

/** Which rule of the header applies to a question for `name`. */
export function routeQuestion(name: string, config: DnsResolverConfig): DnsRoute {
  const n = lower(name);
  const d = lower(config.clusterDomain);
  if (n === d || n.endsWith(`.${d}`)) return { kind: 'cluster' };
  if (n === 'arpa' || n.endsWith('.arpa')) {
    const ip = reverseNameAddress(n);
    const subnets = config.routedSubnets.flatMap((c) => {
      const cidr = typeof c === 'string' ? tryParseCidr(c) : c;
      return cidr === undefined ? [] : [cidr];
    });
    const inCluster = ip !== undefined && subnets.some((c) => contains(c, ip));
    return inCluster ? { kind: 'cluster' } : { kind: 'upstream' };
  }
  // The root and empty names have no search candidates either.
  if (n === '') return { kind: 'upstream' };
  const tld = n.slice(n.lastIndexOf('.') + 1);
  const excluded = (config.excludedSuffixes ?? DEFAULT_EXCLUDED_SUFFIXES).map(lower);
  if (excluded.includes(tld)) return { kind: 'upstream' };
  return { kind: 'search', candidates: searchCandidates(n, config.namespace, config.clusterDomain) };
}

/** A deadline shared by the steps of one query. */
class Budget {
  constructor(
    private readonly clock: Clock,
    private readonly end: number,
  ) {}

  left(): number {
    return this.end - this.clock.now();
  }

  /** `work`, or a DnsFailure after min(`ms`, what is left). */
  within<T>(ms: number, work: () => Promise<T>): Promise<T> {
    const wait = Math.min(ms, this.left());
    if (wait <= 0) return Promise.reject(new DnsFailure('out of time'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DnsFailure(`no answer within ${wait} ms`)), wait);
      work().then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof DnsFailure ? err : new DnsFailure(err instanceof Error ? err.message : String(err)));
        },
      );
    });
  }
}

/**
 * Resolves queries as the header describes. One per connection: the namespace, domain and subnets
 * are those of the session (`reconfigure` replaces them and empties the caches).
 */
export class DnsResolver {
  private config: DnsResolverConfig;
  private nameservers: Nameserver[];
  private timeouts: DnsTimeouts;
  private readonly clock: Clock;
  /** Final responses per (name, type, class), positive only. */
  private readonly answers = new Map<string, CacheEntry>();
  /** Candidate names the cluster said NXDOMAIN to, with when that stops counting. */
  private readonly missing = new Map<string, number>();
  private counts = { clusterQueries: 0, upstreamQueries: 0, cacheHits: 0 };

  constructor(
    private readonly ports: DnsResolverPorts,
    config: DnsResolverConfig,
  ) {
    this.clock = ports.clock ?? systemClock;
    this.config = config;
    this.nameservers = this.parseNameservers(config);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeouts };
  }

  /** Takes a new session's namespace, domain, subnets or nameservers; forgets what was cached. */
  reconfigure(config: DnsResolverConfig): void {
    this.config = config;
    this.nameservers = this.parseNameservers(config);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeouts };
    this.answers.clear();
    this.missing.clear();
  }

  stats(): DnsStats {
    return { ...this.counts };
  }

  /**
   * The response to send for `query`; undefined when nothing should be sent (a message too short to
   * carry an ID, or a response rather than a query: answering those could ping-pong forever).
   * Never rejects, and settles within the configured total timeout.
   */
  async resolve(query: Buffer): Promise<Buffer | undefined> {
    if (query.length < 12 || ((query[2] as number) & 0x80) !== 0) return undefined;
    const id = query.readUInt16BE(0);
    const rd = ((query[2] as number) & 0x01) !== 0;
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      return errorResponse(id, rd, undefined, RCODE.FORMERR);
    }
    const question = packet.questions?.[0];
    if (question === undefined || packet.questions?.length !== 1) return errorResponse(id, rd, undefined, RCODE.FORMERR);
    // Only standard queries (opcode 0): NOTIFY, UPDATE and the like are not ours to pass on.
    if (((query[2] as number) & 0x78) !== 0) return errorResponse(id, rd, question, RCODE.NOTIMP);

    const key = `${lower(question.name)}|${question.type}|${question.class ?? 'IN'}`;
    const cached = this.answers.get(key);
    if (cached !== undefined) {
      if (cached.expires > this.clock.now()) {
        this.counts.cacheHits++;
        return forClient(cached.response, id, rd);
      }
      this.answers.delete(key);
    }

    const budget = new Budget(this.clock, this.clock.now() + this.timeouts.totalMs);
    let response: Buffer;
    try {
      response = await this.answer(query, packet, question, budget);
    } catch {
      return errorResponse(id, rd, question, RCODE.SERVFAIL);
    }
    this.remember(key, response);
    return forClient(response, id, rd);
  }

  private async answer(query: Buffer, packet: DecodedPacket, question: Question, budget: Budget): Promise<Buffer> {
    const route = routeQuestion(question.name, this.config);
    if (route.kind === 'cluster') {
      const response = await this.askCluster(query, budget);
      const rcode = rcodeOf(response);
      if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) throw new DnsFailure(`cluster answered rcode ${String(rcode)}`);
      return response;
    }
    if (route.kind === 'search') {
      const now = this.clock.now();
      for (const candidate of route.candidates) {
        const until = this.missing.get(candidate);
        if (until !== undefined && until > now) continue;
        const response = await this.askCluster(candidateQuery(packet, question, candidate), budget);
        const rcode = rcodeOf(response);
        if (rcode === RCODE.NOERROR) return renamed(response, candidate, question);
        if (rcode !== RCODE.NXDOMAIN) throw new DnsFailure(`cluster answered rcode ${String(rcode)} for ${candidate}`);
        this.noteMissing(candidate);
      }
    }
    return this.askUpstream(query, budget);
  }

  private async askCluster(query: Buffer, budget: Budget): Promise<Buffer> {
    this.counts.clusterQueries++;
    const response = await budget.within(this.timeouts.clusterMs, () => this.ports.askCluster(query));
    if (response.length < 12) throw new DnsFailure('cluster answered a truncated message');
    return response;
  }

  /** The nameservers in order, each with the time left; the first answer wins. */
  private async askUpstream(query: Buffer, budget: Budget): Promise<Buffer> {
    for (const server of this.nameservers) {
      if (budget.left() <= 0) break;
      this.counts.upstreamQueries++;
      try {
        const response = await budget.within(this.timeouts.upstreamMs, () => this.ports.askUpstream(query, server, this.timeouts.upstreamMs));
        if (response.length >= 12) return response;
      } catch {
        // Silence or an error from one server: try the next, as a stub resolver does.
      }
    }
    throw new DnsFailure('no upstream nameserver answered');
  }

  /**
   * A negative cache for search candidates (5 s). glibc asks A and AAAA for every name, and a
   * name outside the cluster that is not under an excluded suffix ("printer.lan", or a name with
   * the workstation's own search domain appended) costs three cluster round trips each time
   * before it goes upstream. Keyed by name alone: NXDOMAIN says the name has no records of any
   * type, so the AAAA question after the A one skips the cluster.
   */
  private noteMissing(candidate: string): void {
    if (this.missing.size >= CACHE_MAX_ENTRIES) this.missing.clear();
    this.missing.set(candidate, this.clock.now() + NEGATIVE_CACHE_MS);
  }

  /**
   * A positive cache: NOERROR responses, for their smallest TTL, at most 30 s (a Service's
   * address changes rarely, but a Service deleted and made again must not stay wrong for long).
   * TTLs in a cached response are not counted down: within 30 s that is harmless.
   */
  private remember(key: string, response: Buffer): void {
    if (rcodeOf(response) !== RCODE.NOERROR) return;
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(response);
    } catch {
      return;
    }
    const ttls = [...(packet.answers ?? []), ...(packet.authorities ?? [])].flatMap((a) => ('ttl' in a && a.ttl !== undefined ? [a.ttl] : []));
    if (ttls.length === 0) return;
    const ms = Math.min(Math.min(...ttls) * 1000, POSITIVE_CACHE_MAX_MS);
    if (ms <= 0) return;
    if (this.answers.size >= CACHE_MAX_ENTRIES) this.answers.clear();
    this.answers.set(key, { response: forClient(response, 0, false), expires: this.clock.now() + ms });
  }

  private parseNameservers(config: DnsResolverConfig): Nameserver[] {
    return config.nameservers.flatMap((text) => {
      const ns = parseNameserver(text);
      return ns === undefined ? [] : [ns];
    });
  }
}

/** A query for `candidate` with the client's type, class, flags and EDNS record. */
function candidateQuery(packet: DecodedPacket, question: Question, candidate: string): Buffer {
  const opt = (packet.additionals ?? []).filter((a) => a.type === 'OPT');
  return dnsPacket.encode({
    type: 'query',
    id: 0,
    flags: RD | ((packet.flags ?? 0) & dnsPacket.CHECKING_DISABLED),
    questions: [{ ...question, name: candidate }],
    additionals: opt,
  });
}

/**
 * The cluster's answer for `candidate` as the answer for the name the client asked: its question,
 * and every answer, authority and additional record owned by `candidate` renamed (in the client's
 * spelling). Record data (a CNAME's target, an SRV's host) keeps the cluster's full names, which
 * resolve as they are.
 */
function renamed(response: Buffer, candidate: string, question: Question): Buffer {
  const packet = dnsPacket.decode(response);
  const rename = (records: Answer[] | undefined): Answer[] =>
    (records ?? []).map((r) => (lower(r.name) === candidate ? { ...r, name: question.name } : r));
  const out: Packet = {
    type: 'response',
    id: packet.id ?? 0,
    flags: packet.flags ?? 0,
    questions: [question],
    answers: rename(packet.answers),
    authorities: rename(packet.authorities),
    additionals: rename(packet.additionals),
  };
  return dnsPacket.encode(out);
}

/** A response without records: FORMERR, SERVFAIL, NOTIMP. */
function errorResponse(id: number, rd: boolean, question: Question | undefined, rcode: number): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id,
    flags: (rd ? RD : 0) | RA | rcode,
    questions: question === undefined ? [] : [question],
  });
}
