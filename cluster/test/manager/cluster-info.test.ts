import { TpError } from '@telepresence-ts/core/errors';
import t from 'tap';
import {
  CLUSTER_INFO_TTL_MS,
  ClusterInfoProvider,
  clusterDomainFromSearch,
  dnsFromResolvConf,
  rangeFromRefusal,
  type ClusterNetworkApi,
} from '../../src/manager/cluster-info.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';

const RESOLV_CONF = `search tp-system.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
`;

/** A ClusterNetworkApi whose answers a test sets; `undefined`/throwing functions model absent APIs. */
class FakeNetwork implements ClusterNetworkApi {
  nodeCidrs: string[] | Error = [];
  podIps: string[] = [];
  serviceCidrs: string[] | undefined | Error = undefined;
  refusal: string | undefined | Error = undefined;
  kubernetesIp: string | undefined = '10.96.0.1';
  readonly calls: string[] = [];

  async listNodePodCidrs(): Promise<string[]> {
    this.calls.push('nodes');
    if (this.nodeCidrs instanceof Error) throw this.nodeCidrs;
    return this.nodeCidrs;
  }
  async listPodIps(): Promise<string[]> {
    this.calls.push('pods');
    return this.podIps;
  }
  async listServiceCidrs(): Promise<string[] | undefined> {
    this.calls.push('servicecidrs');
    if (this.serviceCidrs instanceof Error) throw this.serviceCidrs;
    return this.serviceCidrs;
  }
  async refusedClusterIpMessage(namespace: string, clusterIp: string): Promise<string | undefined> {
    this.calls.push(`probe ${namespace} ${clusterIp}`);
    if (this.refusal instanceof Error) throw this.refusal;
    return this.refusal;
  }
  async kubernetesServiceIp(): Promise<string | undefined> {
    this.calls.push('kubernetes');
    return this.kubernetesIp;
  }
}

const forbidden = (what: string): TpError => new TpError('config', 'forbidden', `the traffic-manager may not ${what}`);
const KIND_REFUSAL =
  'Service "tp-service-range-probe-x" is invalid: spec.clusterIPs: Invalid value: []string{"1.1.1.1"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16';

function provider(kube: ClusterNetworkApi, over: { resolv?: () => Promise<string>; podCidrs?: string[]; serviceCidrs?: string[] } = {}) {
  const clock = new FakeClock();
  const logs: string[] = [];
  const p = new ClusterInfoProvider({
    kube,
    namespace: 'tp-system',
    readResolvConf: over.resolv ?? (() => Promise.resolve(RESOLV_CONF)),
    clock,
    log: createLogger('traffic-manager', 'debug', (line) => logs.push(line)),
    podCidrs: over.podCidrs,
    serviceCidrs: over.serviceCidrs,
  });
  return { p, clock, logs };
}

t.test('pod subnets', async (t) => {
  const cases: Array<{ name: string; nodeCidrs: string[] | Error; podIps?: string[]; want: string[]; calls: string[] }> = [
    {
      name: "the nodes' podCIDRs, deduplicated, both families",
      nodeCidrs: ['10.244.0.0/24', 'fd00:10:244::/64', '10.244.1.0/24', '10.244.0.0/24', '10.244.0.0/16'],
      want: ['fd00:10:244::/64', '10.244.0.0/16'],
      calls: ['nodes'],
    },
    {
      name: "no node has a podCIDR (a CNI with its own IPAM): the /16 or /64 around each pod's IP",
      nodeCidrs: [],
      podIps: ['192.168.3.7', '192.168.200.1', '172.16.0.9', 'fd00:1:2:3::17', 'fd00:1:2:3::99'],
      want: ['192.168.0.0/16', '172.16.0.0/16', 'fd00:1:2:3::/64'],
      calls: ['nodes', 'pods'],
    },
    {
      name: 'nodes may not be listed (an older installation): the pods',
      nodeCidrs: forbidden('list the nodes'),
      podIps: ['10.1.2.3'],
      want: ['10.1.0.0/16'],
      calls: ['nodes', 'pods'],
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const kube = new FakeNetwork();
      kube.nodeCidrs = c.nodeCidrs;
      kube.podIps = c.podIps ?? [];
      kube.serviceCidrs = ['10.96.0.0/16'];
      const { p } = provider(kube);
      t.strictSame((await p.get()).podSubnets, c.want);
      t.strictSame(
        kube.calls.filter((x) => x === 'nodes' || x === 'pods'),
        c.calls,
      );
    });
  }
});

t.test('service subnets', async (t) => {
  const cases: Array<{ name: string; serviceCidrs: string[] | undefined | Error; refusal?: string | Error; kubernetesIp?: string; want: string[]; calls: string[] }> = [
    {
      name: 'the ServiceCIDR objects (Kubernetes 1.33+), deduplicated',
      serviceCidrs: ['10.96.0.0/16', 'fd00:10:96::/112', '10.96.0.0/16'],
      want: ['10.96.0.0/16', 'fd00:10:96::/112'],
      calls: ['servicecidrs'],
    },
    {
      name: 'no ServiceCIDR API (404): the range named in the refusal of ClusterIP 1.1.1.1',
      serviceCidrs: undefined,
      refusal: KIND_REFUSAL,
      want: ['10.96.0.0/16'],
      calls: ['servicecidrs', 'probe tp-system 1.1.1.1'],
    },
    {
      name: 'ServiceCIDRs forbidden: the refusal too',
      serviceCidrs: forbidden('list the ServiceCIDRs'),
      refusal: 'The range of valid IPs is fd00:10:96::/108',
      want: ['fd00:10:96::/108'],
      calls: ['servicecidrs', 'probe tp-system 1.1.1.1'],
    },
    {
      name: 'a refusal without a range: the /16 around the kubernetes Service',
      serviceCidrs: [],
      refusal: 'Service "x" is invalid: something else',
      kubernetesIp: '10.43.0.1',
      want: ['10.43.0.0/16'],
      calls: ['servicecidrs', 'probe tp-system 1.1.1.1', 'kubernetes'],
    },
    {
      name: 'the probe may not create Services: the kubernetes Service, IPv6',
      serviceCidrs: undefined,
      refusal: forbidden('create services'),
      kubernetesIp: 'fd00:10:96::1',
      want: ['fd00:10:96::/108'],
      calls: ['servicecidrs', 'probe tp-system 1.1.1.1', 'kubernetes'],
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const kube = new FakeNetwork();
      kube.nodeCidrs = ['10.244.0.0/16'];
      kube.serviceCidrs = c.serviceCidrs;
      kube.refusal = c.refusal;
      if (c.kubernetesIp !== undefined) kube.kubernetesIp = c.kubernetesIp;
      const { p } = provider(kube);
      t.strictSame((await p.get()).serviceSubnets, c.want);
      t.strictSame(
        kube.calls.filter((x) => x !== 'nodes'),
        c.calls,
      );
    });
  }

  t.test('nothing tells it: a cluster error naming the override', async (t) => {
    const kube = new FakeNetwork();
    kube.refusal = forbidden('create services');
    kube.kubernetesIp = undefined;
    await t.rejects(provider(kube).p.get(), { category: 'cluster', code: 'no-service-subnet', hint: /TP_SERVICE_CIDRS/ });
  });
});

t.test('the DNS domain and server come from resolv.conf', async (t) => {
  const cases: Array<{ name: string; text: string; want: { clusterDomain: string; dnsServer: string } }> = [
    { name: 'a pod of tp-system', text: RESOLV_CONF, want: { clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' } },
    {
      name: 'another domain, IPv6, two nameservers',
      text: 'nameserver fd00:10:96::a\nnameserver 10.96.0.10\nsearch tp-system.svc.corp.example svc.corp.example corp.example\n',
      want: { clusterDomain: 'corp.example', dnsServer: 'fd00:10:96::a' },
    },
    { name: 'no search list, no nameserver: the defaults', text: '# empty\n', want: { clusterDomain: 'cluster.local', dnsServer: '' } },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      t.strictSame(dnsFromResolvConf(c.text), c.want);
    });
  }
  t.equal(clusterDomainFromSearch(['svc.', 'example.com']), 'cluster.local', 'a bare "svc." names no domain');

  t.test('an unreadable resolv.conf: the defaults, and a warning', async (t) => {
    const kube = new FakeNetwork();
    kube.nodeCidrs = ['10.244.0.0/16'];
    kube.serviceCidrs = ['10.96.0.0/16'];
    const { p, logs } = provider(kube, { resolv: () => Promise.reject(new Error('ENOENT')) });
    t.match(await p.get(), { clusterDomain: 'cluster.local', dnsServer: '' });
    t.ok(logs.some((l) => l.includes('cannot read resolv.conf')));
  });
});

t.test('rangeFromRefusal reads the range out of the API server’s message only', async (t) => {
  t.match(rangeFromRefusal(KIND_REFUSAL), { family: 4, bits: 16 });
  t.equal(rangeFromRefusal('The range of valid IPs is 10.96.0.0'), undefined, 'no prefix length');
  t.equal(rangeFromRefusal('field is immutable'), undefined);
});

t.test('the admin’s subnets replace discovery', async (t) => {
  const kube = new FakeNetwork();
  const { p } = provider(kube, { podCidrs: ['10.0.0.0/8'], serviceCidrs: ['172.20.0.0/16'] });
  t.strictSame(await p.get(), { podSubnets: ['10.0.0.0/8'], serviceSubnets: ['172.20.0.0/16'], clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' });
  t.strictSame(kube.calls, [], 'the cluster is not asked');
});

t.test('an answer is computed once, shared, and reused for 30 s', async (t) => {
  const kube = new FakeNetwork();
  kube.nodeCidrs = ['10.244.0.0/24'];
  kube.serviceCidrs = ['10.96.0.0/16'];
  const { p, clock } = provider(kube);
  const [a, b] = await Promise.all([p.get(), p.get()]);
  t.strictSame(a, b);
  t.equal(kube.calls.filter((c) => c === 'nodes').length, 1, 'concurrent callers share one computation');
  kube.nodeCidrs = ['10.244.0.0/24', '10.244.1.0/24'];
  clock.advance(CLUSTER_INFO_TTL_MS - 1);
  t.strictSame((await p.get()).podSubnets, ['10.244.0.0/24'], 'still the cached answer');
  clock.advance(1);
  t.strictSame((await p.get()).podSubnets, ['10.244.0.0/24', '10.244.1.0/24'], 'a node added since is seen after the TTL');
  t.equal(kube.calls.filter((c) => c === 'nodes').length, 2);
});

t.test('a failure is not cached', async (t) => {
  const kube = new FakeNetwork();
  kube.nodeCidrs = ['10.244.0.0/24'];
  kube.refusal = forbidden('create services');
  kube.kubernetesIp = undefined;
  const { p } = provider(kube);
  await t.rejects(p.get(), { code: 'no-service-subnet' });
  kube.serviceCidrs = ['10.96.0.0/16'];
  t.strictSame((await p.get()).serviceSubnets, ['10.96.0.0/16']);
});
