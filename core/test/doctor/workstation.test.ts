import t from 'tap';
import { OUTBOUND_DEFAULTS } from '../../src/outbound/outbound.js';
import { checkDns, checkNetworkDaemon, checkSubnets, checkTunDevice, checkVolumes } from '../../src/doctor/workstation.js';
import { CLUSTER_INFO, fakeHost } from './fixtures/fake-doctor.js';

t.test('volumes: sshfs and /dev/fuse, or a warning naming what is missing', async (t) => {
  t.equal((await checkVolumes(fakeHost())).status, 'ok');
  const noSshfs = await checkVolumes(fakeHost({ commands: {} }));
  t.equal(noSshfs.status, 'warn');
  t.match(noSshfs.message, /^sshfs is not on PATH: intercepts work, but without the container's volumes/);
  t.equal(noSshfs.fix, 'sudo apt-get install sshfs');
  const neither = await checkVolumes(fakeHost({ commands: {}, files: [] }));
  t.match(neither.message, /^sshfs is not on PATH and \/dev\/fuse is missing/);
  t.equal(neither.fix, 'sudo apt-get install sshfs && sudo modprobe fuse');
});

t.test('tun-device: present, missing, or not Linux', async (t) => {
  t.equal((await checkTunDevice(fakeHost())).status, 'ok');
  const missing = await checkTunDevice(fakeHost({ files: [] }));
  t.equal(missing.status, 'fail');
  t.match(missing.fix, /^sudo modprobe tun/);
  const mac = await checkTunDevice(fakeHost({ platform: 'darwin' }));
  t.equal(mac.status, 'fail');
  t.match(mac.message, /Linux only \(this is darwin\)/);
});

t.test('network-daemon: a running one, root with its tools, root without them, or neither', async (t) => {
  t.match(await checkNetworkDaemon(fakeHost({ euid: 1000, networkDaemonAnswers: async () => true })), { status: 'ok', message: /a network daemon answers/ });
  t.match(await checkNetworkDaemon(fakeHost()), { status: 'ok', message: /you are root: connect starts the network daemon itself/ });
  const noTools = await checkNetworkDaemon(fakeHost({ commands: { sshfs: '/usr/bin/sshfs', ip: '/usr/sbin/ip' } }));
  t.match(noTools, { status: 'fail', message: /iptables is missing/, fix: 'sudo apt-get install iproute2 iptables' });
  const user = await checkNetworkDaemon(fakeHost({ euid: 1000 }));
  t.equal(user.status, 'fail');
  t.equal(user.fix, 'sudo /usr/local/bin/kubectl-telepresence network-daemon --owner 1000 (or connect with --outbound=false)');
});

t.test('subnets: connect\'s own plan; a conflict names both routes and --never-proxy', async (t) => {
  const clear = await checkSubnets(fakeHost(), CLUSTER_INFO, '', OUTBOUND_DEFAULTS);
  t.equal(clear.status, 'ok');
  t.equal(clear.message, "10.244.0.0/16, 10.96.0.0/16 would be routed to the cluster, clashing with none of this workstation's 1 routes");
  const vpn = fakeHost({ localRoutes: async () => [{ cidr: '10.96.0.0/12', device: 'tun0' }] });
  const conflict = await checkSubnets(vpn, CLUSTER_INFO, '', OUTBOUND_DEFAULTS);
  t.equal(conflict.status, 'fail');
  t.equal(conflict.message, "the cluster's service subnet 10.96.0.0/16 overlaps this workstation's route 10.96.0.0/12 (dev tun0)");
  t.match(conflict.fix, /^pass --never-proxy 10.96.0.0\/12 to leave those addresses to tun0/);
  const resolved = await checkSubnets(vpn, CLUSTER_INFO, '', { ...OUTBOUND_DEFAULTS, neverProxy: ['10.96.0.0/12'] });
  t.equal(resolved.status, 'ok', 'the --never-proxy it suggests resolves it');
  const own = await checkSubnets(fakeHost({ localRoutes: async () => [{ cidr: '10.96.0.0/16', device: 'tpts0' }] }), CLUSTER_INFO, '', OUTBOUND_DEFAULTS);
  t.equal(own.status, 'ok', "a device of ours (a connected daemon's) is no conflict");
});

t.test('subnets without ClusterInfo: not checked, saying why', async (t) => {
  const f = await checkSubnets(fakeHost(), undefined, 'the traffic-manager could not be reached', OUTBOUND_DEFAULTS);
  t.equal(f.status, 'warn');
  t.equal(f.message, "not checked: the cluster's subnets come from the traffic-manager (the traffic-manager could not be reached)");
  const none = await checkSubnets(fakeHost(), { ...CLUSTER_INFO, podSubnets: [], serviceSubnets: [] }, '', OUTBOUND_DEFAULTS);
  t.match(none, { status: 'fail', message: /found no pod or service subnets/ });
});

const dnsCases: Array<[string, string | undefined, string, RegExp]> = [
  ['IPv4 nameservers', 'nameserver 10.0.0.2\nnameserver fd00::1\n', 'ok', /queries to 10.0.0.2 would be answered first by the cluster \(fd00::1 not: IPv6\)/],
  ['only IPv6', 'nameserver fd00::1\n', 'warn', /names no IPv4 nameserver \(only fd00::1\)/],
  ['no nameserver', 'search home\n', 'warn', /names no IPv4 nameserver:/],
  ['no file', undefined, 'warn', /\/etc\/resolv.conf is missing/],
  ["systemd-resolved's stub", 'nameserver 127.0.0.53\noptions edns0\n', 'warn', /systemd-resolved's stub 127.0.0.53/],
];
for (const [name, text, status, message] of dnsCases) {
  t.test(`dns: ${name}`, async (t) => {
    const f = await checkDns(fakeHost({ readResolvConf: async () => text }));
    t.equal(f.status, status);
    t.match(f.message, message);
  });
}
