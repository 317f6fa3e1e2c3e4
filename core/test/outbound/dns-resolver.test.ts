import t from 'tap';
import type { Answer, RecordType } from 'dns-packet';
import type { Clock } from '../../src/clock.js';
import {
  DnsResolver,
  parseNameserver,
  reverseNameAddress,
  routeQuestion,
  searchCandidates,
  type DnsResolverConfig,
  type Nameserver,
} from '../../src/outbound/dns-resolver.js';
import { a, ANY, authority, decode, query, RCODES } from './dns-fakes.js';

const CLUSTER: Answer[] = [
  a('orders.shop.svc.cluster.local', '10.96.0.5'),
  a('billing.other.svc.cluster.local', '10.96.0.7'),
  a('web-0.db.shop.svc.cluster.local', '10.244.0.9'),
  a('10-244-0-9.shop.pod.cluster.local', '10.244.0.9'),
  { type: 'CNAME', name: 'ext.shop.svc.cluster.local', ttl: 30, class: 'IN', data: 'orders.shop.svc.cluster.local' },
  { type: 'SRV', name: '_http._tcp.orders.shop.svc.cluster.local', ttl: 30, class: 'IN', data: { priority: 0, weight: 100, port: 80, target: 'orders.shop.svc.cluster.local' } },
  { type: 'PTR', name: '5.0.96.10.in-addr.arpa', ttl: 30, class: 'IN', data: 'orders.shop.svc.cluster.local' },
  {
    type: 'PTR',
    name: '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa',
    ttl: 30,
    class: 'IN',
    data: 'orders.shop.svc.cluster.local',
  },
  { type: 'TXT', name: 'orders.shop.svc.cluster.local', ttl: 30, class: 'IN', data: ['cluster'] },
];

const UPSTREAM: Answer[] = [
  a('example.com', '93.184.216.34', 300),
  a('printer.lan', '192.168.1.50'),
  // Names the cluster also knows: an answer from here would be a leak or a wrong answer.
  a('orders', '192.168.1.99'),
  a('orders.shop.svc.cluster.local', '192.168.1.98'),
  a('nothere.svc.cluster.local', '192.168.1.97'),
  { type: 'AAAA', name: 'orders', ttl: 30, class: 'IN', data: 'fd99::1' },
  { type: 'PTR', name: '50.1.168.192.in-addr.arpa', ttl: 30, class: 'IN', data: 'printer.lan' },
];

const CONFIG: DnsResolverConfig = {
  namespace: 'shop',
  clusterDomain: 'cluster.local',
  routedSubnets: ['10.96.0.0/12', '10.244.0.0/16', 'fd00::/108'],
  nameservers: ['127.0.0.1:5300', '10.0.0.2'],
  timeouts: { clusterMs: 100, upstreamMs: 100, totalMs: 300 },
};

class FakeClock implements Clock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
  sleep(): Promise<void> {
    return Promise.resolve();
  }
}

type Behaviour = 'answer' | 'fail' | 'hang';

/** A resolver over fake cluster and upstream authorities that records every question. */
function setup(options: { config?: Partial<DnsResolverConfig>; cluster?: Behaviour; upstream?: Record<string, Behaviour>; clusterAnswer?: (q: Buffer) => Buffer } = {}) {
  const clusterAsked: string[] = [];
  const upstreamAsked: string[] = [];
  const clock = new FakeClock();
  const clusterAuthority = options.clusterAnswer ?? authority(CLUSTER);
  const upstreamAuthority = authority(UPSTREAM, 'lan');
  const nameOf = (q: Buffer): string => decode(q).questions?.[0]?.name ?? '?';
  const behave = <T>(b: Behaviour, answer: () => T): Promise<T> =>
    b === 'answer' ? Promise.resolve(answer()) : b === 'fail' ? Promise.reject(new Error('boom')) : new Promise<T>(() => undefined);
  const resolver = new DnsResolver(
    {
      askCluster: (q) => {
        clusterAsked.push(nameOf(q));
        return behave(options.cluster ?? 'answer', () => clusterAuthority(q));
      },
      askUpstream: (q, server: Nameserver) => {
        const where = `${server.address}:${server.port}`;
        upstreamAsked.push(`${where} ${nameOf(q)}`);
        return behave(options.upstream?.[where] ?? 'answer', () => upstreamAuthority(q));
      },
      clock,
    },
    { ...CONFIG, ...options.config },
  );
  return { resolver, clusterAsked, upstreamAsked, clock };
}

t.test('search candidates and routes', async (t) => {
  t.strictSame(searchCandidates('orders', 'shop', 'cluster.local'), ['orders.shop.svc.cluster.local']);
  t.strictSame(searchCandidates('Orders.Shop.', 'shop', 'cluster.local'), [
    'orders.shop.shop.svc.cluster.local',
    'orders.shop.svc.cluster.local',
    'orders.shop.cluster.local',
  ]);
  const routes: Array<[string, string]> = [
    ['cluster.local', 'cluster'],
    ['x.y.svc.cluster.local', 'cluster'],
    ['notcluster.local', 'search'],
    ['example.com', 'upstream'],
    ['EXAMPLE.IO.', 'upstream'],
    ['x.ru', 'upstream'],
    ['5.0.96.10.in-addr.arpa', 'cluster'],
    ['1.1.168.192.in-addr.arpa', 'upstream'],
    ['96.10.in-addr.arpa', 'upstream'],
    ['arpa', 'upstream'],
    ['', 'upstream'],
    ['orders', 'search'],
  ];
  for (const [name, kind] of routes) t.equal(routeQuestion(name, CONFIG).kind, kind, JSON.stringify(name));
  t.equal(reverseNameAddress('4.3.2.1.in-addr.arpa'), '1.2.3.4');
  t.equal(reverseNameAddress('256.3.2.1.in-addr.arpa'), undefined);
  t.equal(reverseNameAddress('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa'), 'fd00:0000:0000:0000:0000:0000:0000:0001');
  t.strictSame(parseNameserver('10.0.0.2'), { address: '10.0.0.2', port: 53 });
  t.strictSame(parseNameserver('127.0.0.1:5300'), { address: '127.0.0.1', port: 5300 });
  t.strictSame(parseNameserver('[::1]:5300'), { address: '::1', port: 5300 });
  t.strictSame(parseNameserver('fe80::1%eth0'), { address: 'fe80::1%eth0', port: 53 });
  t.equal(parseNameserver('dns.example:53'), undefined);
  t.equal(parseNameserver('10.0.0.2:0'), undefined);
});

interface Case {
  readonly name: string;
  readonly q: string;
  readonly type?: RecordType;
  readonly config?: Partial<DnsResolverConfig>;
  readonly rcode: number;
  /** Each answer as "name type data". */
  readonly answers: string[];
  readonly clusterAsked: string[];
  readonly upstreamAsked: string[];
}

const show = (r: Answer): string => `${r.name} ${r.type} ${'data' in r ? (typeof r.data === 'object' && !Buffer.isBuffer(r.data) && !Array.isArray(r.data) ? JSON.stringify(r.data) : String(r.data)) : ''}`;

const CASES: Case[] = [
  {
    name: 'a single label is a Service of the connected namespace, renamed back',
    q: 'orders',
    rcode: RCODES.NOERROR,
    answers: ['orders A 10.96.0.5'],
    clusterAsked: ['orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'name.namespace takes the second candidate',
    q: 'billing.other',
    rcode: RCODES.NOERROR,
    answers: ['billing.other A 10.96.0.7'],
    clusterAsked: ['billing.other.shop.svc.cluster.local', 'billing.other.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'a pod name under its headless Service takes the first candidate',
    q: 'web-0.db',
    rcode: RCODES.NOERROR,
    answers: ['web-0.db A 10.244.0.9'],
    clusterAsked: ['web-0.db.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'name.namespace.svc takes the third candidate',
    q: 'orders.shop.svc',
    rcode: RCODES.NOERROR,
    answers: ['orders.shop.svc A 10.96.0.5'],
    clusterAsked: ['orders.shop.svc.shop.svc.cluster.local', 'orders.shop.svc.svc.cluster.local', 'orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'the spelling asked is the spelling answered',
    q: 'ORDERS',
    rcode: RCODES.NOERROR,
    answers: ['ORDERS A 10.96.0.5'],
    clusterAsked: ['orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'a full cluster name is asked as it is',
    q: 'orders.shop.svc.cluster.local',
    rcode: RCODES.NOERROR,
    answers: ['orders.shop.svc.cluster.local A 10.96.0.5'],
    clusterAsked: ['orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'NXDOMAIN under the cluster domain never goes upstream',
    q: 'nothere.svc.cluster.local',
    rcode: RCODES.NXDOMAIN,
    answers: [],
    clusterAsked: ['nothere.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'the cluster domain itself is the cluster\'s',
    q: 'cluster.local',
    type: 'SOA',
    rcode: RCODES.NXDOMAIN,
    answers: [],
    clusterAsked: ['cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'NODATA for AAAA of a Service is NOERROR with no records, not upstream',
    q: 'orders',
    type: 'AAAA',
    rcode: RCODES.NOERROR,
    answers: [],
    clusterAsked: ['orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'every candidate NXDOMAIN: upstream answers',
    q: 'printer.lan',
    rcode: RCODES.NOERROR,
    answers: ['printer.lan A 192.168.1.50'],
    clusterAsked: ['printer.lan.shop.svc.cluster.local', 'printer.lan.svc.cluster.local', 'printer.lan.cluster.local'],
    upstreamAsked: ['127.0.0.1:5300 printer.lan'],
  },
  {
    name: 'upstream NXDOMAIN is passed on',
    q: 'nowhere.lan',
    rcode: RCODES.NXDOMAIN,
    answers: [],
    clusterAsked: ['nowhere.lan.shop.svc.cluster.local', 'nowhere.lan.svc.cluster.local', 'nowhere.lan.cluster.local'],
    upstreamAsked: ['127.0.0.1:5300 nowhere.lan'],
  },
  {
    name: 'an excluded suffix goes upstream only',
    q: 'example.com',
    rcode: RCODES.NOERROR,
    answers: ['example.com A 93.184.216.34'],
    clusterAsked: [],
    upstreamAsked: ['127.0.0.1:5300 example.com'],
  },
  {
    name: 'the excluded suffixes can be chosen',
    q: 'example.com',
    config: { excludedSuffixes: ['lan'] },
    rcode: RCODES.NOERROR,
    answers: ['example.com A 93.184.216.34'],
    clusterAsked: ['example.com.shop.svc.cluster.local', 'example.com.svc.cluster.local', 'example.com.cluster.local'],
    upstreamAsked: ['127.0.0.1:5300 example.com'],
  },
  {
    name: 'a chosen excluded suffix skips the cluster',
    q: 'printer.lan',
    config: { excludedSuffixes: ['LAN'] },
    rcode: RCODES.NOERROR,
    answers: ['printer.lan A 192.168.1.50'],
    clusterAsked: [],
    upstreamAsked: ['127.0.0.1:5300 printer.lan'],
  },
  {
    name: 'PTR of a Service address: the cluster',
    q: '5.0.96.10.in-addr.arpa',
    type: 'PTR',
    rcode: RCODES.NOERROR,
    answers: ['5.0.96.10.in-addr.arpa PTR orders.shop.svc.cluster.local'],
    clusterAsked: ['5.0.96.10.in-addr.arpa'],
    upstreamAsked: [],
  },
  {
    name: 'PTR of an IPv6 address in a routed subnet: the cluster',
    q: '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa',
    type: 'PTR',
    rcode: RCODES.NOERROR,
    answers: ['5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa PTR orders.shop.svc.cluster.local'],
    clusterAsked: ['5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa'],
    upstreamAsked: [],
  },
  {
    name: 'PTR of a local address: upstream only',
    q: '50.1.168.192.in-addr.arpa',
    type: 'PTR',
    rcode: RCODES.NOERROR,
    answers: ['50.1.168.192.in-addr.arpa PTR printer.lan'],
    clusterAsked: [],
    upstreamAsked: ['127.0.0.1:5300 50.1.168.192.in-addr.arpa'],
  },
  {
    name: 'a CNAME is renamed, its target kept',
    q: 'ext',
    rcode: RCODES.NOERROR,
    answers: ['ext CNAME orders.shop.svc.cluster.local', 'orders.shop.svc.cluster.local A 10.96.0.5'],
    clusterAsked: ['ext.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'SRV through the search path',
    q: '_http._tcp.orders',
    type: 'SRV',
    rcode: RCODES.NOERROR,
    answers: ['_http._tcp.orders SRV {"priority":0,"weight":100,"port":80,"target":"orders.shop.svc.cluster.local"}'],
    clusterAsked: ['_http._tcp.orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
  {
    name: 'ANY returns every record of the name',
    q: 'orders',
    type: ANY,
    rcode: RCODES.NOERROR,
    answers: ['orders A 10.96.0.5', 'orders TXT cluster'],
    clusterAsked: ['orders.shop.svc.cluster.local'],
    upstreamAsked: [],
  },
];

for (const tc of CASES) {
  t.test(tc.name, async (t) => {
    const { resolver, clusterAsked, upstreamAsked } = setup({ config: tc.config });
    const response = decode(await resolver.resolve(query(tc.q, tc.type ?? 'A', { id: 7 })));
    t.equal(response.rcodeNumber, tc.rcode, 'rcode');
    t.equal(response.id, 7, 'the client\'s ID');
    t.equal(response.flag_qr, true, 'a response');
    t.equal(response.questions?.[0]?.name, tc.q, 'the question as asked');
    t.strictSame((response.answers ?? []).map(show), tc.answers, 'answers');
    t.strictSame(clusterAsked, tc.clusterAsked, 'asked of the cluster');
    t.strictSame(upstreamAsked, tc.upstreamAsked, 'asked upstream');
    t.strictSame(resolver.stats(), { clusterQueries: tc.clusterAsked.length, upstreamQueries: tc.upstreamAsked.length, cacheHits: 0 }, 'stats');
  });
}

t.test('the client\'s ID and RD flag are kept on every path', async (t) => {
  for (const name of ['orders', 'example.com', 'nothere.svc.cluster.local']) {
    for (const rd of [true, false]) {
      const { resolver } = setup();
      const r = decode(await resolver.resolve(query(name, 'A', { id: 0xbeef, rd })));
      t.equal(r.id, 0xbeef, `${name} rd=${rd}: id`);
      t.equal(r.flag_rd, rd, `${name} rd=${rd}: rd`);
    }
  }
});

t.test('malformed messages', async (t) => {
  const { resolver, clusterAsked } = setup();
  // Two bytes: not even a header. Nothing to answer with.
  t.equal(await resolver.resolve(Buffer.from([1, 2])), undefined, 'too short: no answer');
  // A header that promises a question which is not there.
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const bad = decode(await resolver.resolve(header));
  t.equal(bad.rcodeNumber, RCODES.FORMERR, 'truncated question: FORMERR');
  t.equal(bad.id, 0x1234, 'with the client\'s ID');
  t.equal(bad.flag_rd, true);
  const noQuestion = decode(await resolver.resolve(Buffer.from([0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
  t.equal(noQuestion.rcodeNumber, RCODES.FORMERR, 'no question: FORMERR');
  const response = query('orders');
  response[2] = (response[2] as number) | 0x80;
  t.equal(await resolver.resolve(response), undefined, 'a response is never answered');
  const notify = query('orders');
  notify[2] = ((notify[2] as number) & 0x87) | (4 << 3);
  t.equal(decode(await resolver.resolve(notify)).rcodeNumber, RCODES.NOTIMP, 'NOTIFY: NOTIMP');
  t.strictSame(clusterAsked, [], 'nothing asked');
});

t.test('failures answer SERVFAIL, and in time', async (t) => {
  const cases: Array<{ name: string; q: string; cluster?: Behaviour; upstream?: Record<string, Behaviour>; clusterAnswer?: (q: Buffer) => Buffer; rcode: number; upstreamAsked: number }> = [
    { name: 'the cluster fails a cluster name', q: 'orders.shop.svc.cluster.local', cluster: 'fail', rcode: RCODES.SERVFAIL, upstreamAsked: 0 },
    { name: 'the cluster is silent for a cluster name', q: 'orders.shop.svc.cluster.local', cluster: 'hang', rcode: RCODES.SERVFAIL, upstreamAsked: 0 },
    { name: 'the cluster fails a search candidate: not upstream', q: 'orders', cluster: 'fail', rcode: RCODES.SERVFAIL, upstreamAsked: 0 },
    { name: 'the cluster is silent for a search candidate', q: 'printer.lan', cluster: 'hang', rcode: RCODES.SERVFAIL, upstreamAsked: 0 },
    {
      name: 'the cluster DNS answers SERVFAIL',
      q: 'orders',
      clusterAnswer: (q) => {
        const r = Buffer.from(q);
        r[2] = (r[2] as number) | 0x80;
        r[3] = RCODES.SERVFAIL;
        return r;
      },
      rcode: RCODES.SERVFAIL,
      upstreamAsked: 0,
    },
    { name: 'the cluster answers garbage', q: 'orders', clusterAnswer: () => Buffer.from([1, 2, 3]), rcode: RCODES.SERVFAIL, upstreamAsked: 0 },
    { name: 'no upstream answers', q: 'example.com', upstream: { '127.0.0.1:5300': 'hang', '10.0.0.2:53': 'fail' }, rcode: RCODES.SERVFAIL, upstreamAsked: 2 },
    { name: 'the first upstream is silent, the second answers', q: 'example.com', upstream: { '127.0.0.1:5300': 'hang' }, rcode: RCODES.NOERROR, upstreamAsked: 2 },
    { name: 'the first upstream fails, the second answers', q: 'example.com', upstream: { '127.0.0.1:5300': 'fail' }, rcode: RCODES.NOERROR, upstreamAsked: 2 },
  ];
  for (const tc of cases) {
    const { resolver, upstreamAsked } = setup(tc);
    const started = Date.now();
    const r = decode(await resolver.resolve(query(tc.q, 'A', { id: 99 })));
    t.equal(r.rcodeNumber, tc.rcode, `${tc.name}: rcode`);
    t.equal(r.id, 99, `${tc.name}: id`);
    t.equal(r.questions?.[0]?.name, tc.q, `${tc.name}: question`);
    t.equal(upstreamAsked.length, tc.upstreamAsked, `${tc.name}: upstream asked`);
    // The configured total is 300 ms; a timer may fire a little late on a busy machine.
    t.ok(Date.now() - started < 1_000, `${tc.name}: within the total timeout`);
  }
});

t.test('the total timeout bounds a query whose every step is slow', async (t) => {
  const { resolver, clusterAsked } = setup({ cluster: 'hang', config: { timeouts: { clusterMs: 100, upstreamMs: 100, totalMs: 150 } } });
  const started = Date.now();
  t.equal(decode(await resolver.resolve(query('printer.lan'))).rcodeNumber, RCODES.SERVFAIL);
  t.ok(Date.now() - started < 600);
  t.equal(clusterAsked.length, 1, 'a silent cluster is not asked the next candidate');
});

t.test('positive answers are cached for their TTL, at most 30 s', async (t) => {
  const { resolver, clusterAsked, upstreamAsked, clock } = setup();
  await resolver.resolve(query('orders', 'A', { id: 1 }));
  const again = decode(await resolver.resolve(query('Orders', 'A', { id: 2, rd: false })));
  t.equal(clusterAsked.length, 1, 'the second question is answered from the cache');
  t.equal(again.id, 2, 'with its own ID');
  t.equal(again.flag_rd, false, 'and its own RD');
  t.strictSame((again.answers ?? []).map(show), ['orders A 10.96.0.5']);
  t.equal(resolver.stats().cacheHits, 1);
  // TTL 30: still cached at 29 s, gone after.
  clock.t += 29_000;
  await resolver.resolve(query('orders'));
  t.equal(clusterAsked.length, 1);
  clock.t += 2_000;
  await resolver.resolve(query('orders'));
  t.equal(clusterAsked.length, 2, 'expired');
  // Upstream's TTL 300 is capped at 30 s.
  await resolver.resolve(query('example.com'));
  clock.t += 29_000;
  await resolver.resolve(query('example.com'));
  t.equal(upstreamAsked.length, 1);
  clock.t += 2_000;
  await resolver.resolve(query('example.com'));
  t.equal(upstreamAsked.length, 2, 'capped at 30 s');
  // Types are cached apart.
  await resolver.resolve(query('orders', 'TXT'));
  t.equal(clusterAsked.length, 3);
});

t.test('failures and NXDOMAIN are not cached as answers', async (t) => {
  let fail = true;
  const cluster = authority(CLUSTER);
  const { resolver, clusterAsked } = setup({ clusterAnswer: (q) => (fail ? Buffer.from([0]) : cluster(q)) });
  t.equal(decode(await resolver.resolve(query('orders'))).rcodeNumber, RCODES.SERVFAIL);
  fail = false;
  t.equal(decode(await resolver.resolve(query('orders'))).rcodeNumber, RCODES.NOERROR, 'the cluster is asked again');
  t.equal(clusterAsked.length, 2);
  await resolver.resolve(query('nothere.svc.cluster.local'));
  await resolver.resolve(query('nothere.svc.cluster.local'));
  t.equal(clusterAsked.length, 4);
});

t.test('candidates the cluster does not know go straight upstream for 5 s', async (t) => {
  const { resolver, clusterAsked, upstreamAsked, clock } = setup();
  await resolver.resolve(query('printer.lan', 'A'));
  t.equal(clusterAsked.length, 3);
  // glibc's AAAA question right after the A one: no cluster round trip.
  const aaaa = decode(await resolver.resolve(query('printer.lan', 'AAAA')));
  t.equal(aaaa.rcodeNumber, RCODES.NOERROR);
  t.equal(clusterAsked.length, 3, 'the AAAA question skips the cluster');
  t.equal(upstreamAsked.length, 2);
  clock.t += 6_000;
  await resolver.resolve(query('printer.lan', 'MX'));
  t.equal(clusterAsked.length, 6, 'asked again after 5 s');
});

t.test('reconfigure takes a new namespace and forgets the caches', async (t) => {
  const { resolver, clusterAsked } = setup();
  t.strictSame((decode(await resolver.resolve(query('orders'))).answers ?? []).map(show), ['orders A 10.96.0.5']);
  resolver.reconfigure({ ...CONFIG, namespace: 'other' });
  const r = decode(await resolver.resolve(query('billing')));
  t.strictSame((r.answers ?? []).map(show), ['billing A 10.96.0.7']);
  await resolver.resolve(query('orders'));
  t.strictSame(clusterAsked, ['orders.shop.svc.cluster.local', 'billing.other.svc.cluster.local', 'orders.other.svc.cluster.local']);
});
