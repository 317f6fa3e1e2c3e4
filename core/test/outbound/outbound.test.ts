import t from 'tap';
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import type { OutboundConfig } from '@telepresence-ts/proto/network/v1';
import { TpError } from '../../src/errors.js';
import { OutboundAccess, dnsSearchPath, outboundOff, planRoutes, type LocalRoute, type OutboundPorts } from '../../src/outbound/outbound.js';

const CLUSTER: ClusterInfo = { podSubnets: ['10.244.0.0/16'], serviceSubnets: ['10.96.0.0/16'], clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' };
const OPTS = { disabled: false, alsoProxy: [], neverProxy: [] };
const HOME_ROUTES: LocalRoute[] = [
  { cidr: '0.0.0.0/0', device: 'eth0' },
  { cidr: '192.168.1.0/24', device: 'eth0' },
];

t.test('planRoutes', async (t) => {
  const cases: { name: string; cluster?: ClusterInfo; also?: string[]; never?: string[]; local?: LocalRoute[]; routed?: string[]; code?: string; message?: RegExp }[] = [
    { name: 'routes the pod and service subnets', routed: ['10.244.0.0/16', '10.96.0.0/16'] },
    { name: 'adds --also-proxy', also: ['172.30.0.0/24'], routed: ['10.244.0.0/16', '10.96.0.0/16', '172.30.0.0/24'] },
    { name: 'an --also-proxy inside a cluster subnet adds nothing', also: ['10.96.5.0/24'], routed: ['10.244.0.0/16', '10.96.0.0/16'] },
    { name: '--never-proxy splits a subnet', never: ['10.96.128.0/17'], routed: ['10.244.0.0/16', '10.96.0.0/17'] },
    { name: '--never-proxy over a whole subnet removes it', never: ['10.244.0.0/15'], routed: ['10.96.0.0/16'] },
    { name: 'the default route is no conflict', local: [{ cidr: '0.0.0.0/0', device: 'eth0' }], routed: ['10.244.0.0/16', '10.96.0.0/16'] },
    { name: 'a leftover device of ours is no conflict', local: [{ cidr: '10.96.0.0/16', device: 'tpts0' }], routed: ['10.244.0.0/16', '10.96.0.0/16'] },
    {
      name: 'a VPN route inside the service subnet is refused, naming both and the flag',
      local: [{ cidr: '10.96.4.0/24', device: 'wg0' }],
      code: 'subnet-conflict',
      message: /service subnet 10\.96\.0\.0\/16 overlaps this workstation's route 10\.96\.4\.0\/24 \(dev wg0\)/,
    },
    { name: '--never-proxy of the VPN route resolves the conflict', local: [{ cidr: '10.96.4.0/24', device: 'wg0' }], never: ['10.96.4.0/24'] },
    { name: 'an --also-proxy over a local network is refused', also: ['192.168.0.0/16'], local: HOME_ROUTES, code: 'subnet-conflict', message: /--also-proxy subnet 192\.168\.0\.0\/16 overlaps .*192\.168\.1\.0\/24 \(dev eth0\)/ },
    { name: 'a bad --never-proxy is a user error', never: ['10.96.0.0/99'], code: 'bad-subnet', message: /--never-proxy "10\.96\.0\.0\/99" is not a subnet/ },
    { name: 'no subnets at all', cluster: { ...CLUSTER, podSubnets: [], serviceSubnets: [] }, code: 'no-cluster-subnets' },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const run = (): string[] => [...planRoutes(c.cluster ?? CLUSTER, { ...OPTS, alsoProxy: c.also ?? [], neverProxy: c.never ?? [] }, c.local ?? HOME_ROUTES).routed];
      if (c.code !== undefined) {
        t.throws(run, { code: c.code, ...(c.message !== undefined ? { message: c.message } : {}) });
        return;
      }
      const routed = run();
      if (c.name.startsWith('--never-proxy of the VPN')) {
        t.notOk(routed.includes('10.96.0.0/16'), 'the service subnet is no longer routed whole');
        t.ok(routed.includes('10.244.0.0/16'));
        t.ok(routed.includes('10.96.0.0/22') && routed.includes('10.96.5.0/24') && routed.includes('10.96.128.0/17'), `split around 10.96.4.0/24: ${routed.join(' ')}`);
        return;
      }
      t.strictSame(routed, c.routed);
    });
  }
});

t.test('dnsSearchPath is a pod search path', async (t) => {
  t.strictSame(dnsSearchPath('shop', 'cluster.local'), ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
});

interface Recorder {
  readonly steps: string[];
  readonly ports: OutboundPorts;
  lost?: (err: TpError) => void;
  config?: OutboundConfig;
}

function recorder(fail?: 'cluster' | 'flows' | 'dns' | 'network'): Recorder {
  const rec: Recorder = {
    steps: [],
    ports: {
      getClusterInfo: async () => {
        rec.steps.push('cluster-info');
        if (fail === 'cluster') throw new TpError('cluster', 'manager-unreachable', 'gone');
        return CLUSTER;
      },
      localRoutes: async () => HOME_ROUTES,
      startFlowServer: async () => {
        if (fail === 'flows') throw new TpError('internal', 'x', 'flows failed');
        rec.steps.push('flows');
        return { socketPath: '/run/flows.sock', stats: () => ({ tcpFlows: 3, udpFlows: 1, activeFlows: 2 }), close: async () => void rec.steps.push('close flows') };
      },
      startDnsServer: async (c) => {
        if (fail === 'dns') throw new TpError('internal', 'x', 'dns failed');
        rec.steps.push(`dns ${c.namespace} ${c.clusterDomain}`);
        return { port: () => 5353, upstreamPort: () => 40000, stats: () => ({ clusterQueries: 7, upstreamQueries: 2 }), close: async () => void rec.steps.push('close dns') };
      },
      acquireNetwork: async (config, _progress, onLost) => {
        rec.config = config;
        rec.lost = onLost;
        if (fail === 'network') throw new TpError('config', 'needs-root', 'needs root');
        rec.steps.push('network');
        return { ready: { device: 'tpts0', routes: config.subnets, dnsRedirected: ['192.168.1.1'] }, release: async () => void rec.steps.push('release network') };
      },
      log: () => undefined,
    },
  };
  return rec;
}

t.test('start brings up flows, DNS and the network in order, and status reports them', async (t) => {
  const rec = recorder();
  const access = new OutboundAccess(rec.ports, OPTS);
  await access.start('shop', () => undefined, () => undefined);
  t.strictSame(rec.steps, ['cluster-info', 'flows', 'dns shop cluster.local', 'network']);
  t.strictSame(rec.config, { subnets: ['10.244.0.0/16', '10.96.0.0/16'], flowSocket: '/run/flows.sock', dnsPort: 5353, dnsUpstreamPort: 40000, mtu: 0 });
  const s = access.status();
  t.equal(s.state, 'up');
  t.equal(s.device, 'tpts0');
  t.strictSame(s.dnsDomains, ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
  t.equal(s.tcpFlows, 3);
  t.equal(s.dnsClusterQueries, 7);
  await access.stop();
  t.strictSame(rec.steps.slice(4), ['release network', 'close flows', 'close dns']);
  await access.stop();
  t.equal(rec.steps.length, 7, 'a second stop does nothing');
});

t.test('a failure at each step undoes what came before and reports failed', async (t) => {
  const cases = [
    { fail: 'cluster' as const, steps: ['cluster-info'], code: 'manager-unreachable' },
    { fail: 'flows' as const, steps: ['cluster-info'], code: 'x' },
    { fail: 'dns' as const, steps: ['cluster-info', 'flows', 'close flows'], code: 'x' },
    { fail: 'network' as const, steps: ['cluster-info', 'flows', 'dns shop cluster.local', 'close dns', 'close flows'], code: 'needs-root' },
  ];
  for (const c of cases) {
    t.test(c.fail, async (t) => {
      const rec = recorder(c.fail);
      const access = new OutboundAccess(rec.ports, OPTS);
      await t.rejects(access.start('shop', () => undefined, () => undefined), { code: c.code });
      t.strictSame(rec.steps, c.steps);
      t.equal(access.status().state, 'failed');
    });
  }
});

t.test('a conflict is refused before anything starts', async (t) => {
  const rec = recorder();
  const access = new OutboundAccess({ ...rec.ports, localRoutes: async () => [{ cidr: '10.244.0.0/16', device: 'cni0' }] }, OPTS);
  await t.rejects(access.start('shop', () => undefined, () => undefined), { code: 'subnet-conflict' });
  t.strictSame(rec.steps, ['cluster-info']);
});

t.test('a lost network is reported once, and not after stop', async (t) => {
  const rec = recorder();
  const access = new OutboundAccess(rec.ports, OPTS);
  const lost: string[] = [];
  await access.start('shop', () => undefined, (e) => lost.push(e.code));
  rec.lost?.(new TpError('cluster', 'network-lost', 'the engine exited'));
  t.strictSame(lost, ['network-lost']);
  t.equal(access.status().state, 'failed');
  t.equal(access.status().error, 'the engine exited');
  await access.stop();
  rec.lost?.(new TpError('cluster', 'network-lost', 'again'));
  t.strictSame(lost, ['network-lost']);
});

t.test('disabled does nothing and says off', async (t) => {
  const rec = recorder();
  const access = new OutboundAccess(rec.ports, { ...OPTS, disabled: true });
  await access.start('shop', () => undefined, () => undefined);
  t.strictSame(rec.steps, []);
  t.equal(access.status().state, 'off');
  t.equal(outboundOff().state, 'off');
});
