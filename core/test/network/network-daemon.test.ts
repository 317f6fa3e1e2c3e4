import t from 'tap';
import type { OutboundConfig, OutboundReady } from '@telepresence-ts/proto/network/v1';
import { TpError } from '../../src/errors.js';
import { NetworkDaemon, validateOutboundConfig, type PathKind } from '../../src/network/network-daemon.js';
import { FakeSystem, fakeSpawner } from './fixtures/fakes.js';
import { eventually } from '../fixtures/eventually.js';

const FLOWS = '/run/user/1000/telepresence-ts/flows.sock';

const config = (over: Partial<OutboundConfig> = {}): OutboundConfig => ({
  subnets: ['10.96.0.0/12', '10.244.0.0/16', 'fd00::/108'],
  flowSocket: FLOWS,
  dnsPort: 5353,
  dnsUpstreamPort: 40000,
  mtu: 0,
  ...over,
});

const RESOLV = 'search default.svc.cluster.local\nnameserver 10.255.255.53\nnameserver fd00::53\n';

function setup(options: { behaviour?: () => 'ready' | 'silent' | 'crash' | 'missing'; resolv?: string } = {}) {
  const system = new FakeSystem();
  const engine = fakeSpawner(system, options.behaviour);
  const logs: string[] = [];
  const daemon = new NetworkDaemon({
    system,
    spawnEngine: engine.spawn,
    enginePath: '/opt/tp/dist/bin/tp-netstack',
    owner: { uid: 1000, gid: 1001 },
    version: '1.2.3',
    log: (level, message) => logs.push(`${level} ${message}`),
    readResolvConf: async () => options.resolv ?? RESOLV,
    pathKind: async (p): Promise<PathKind> => (p === FLOWS ? 'socket' : p === '/etc/passwd' ? 'other' : 'missing'),
    engineReadyTimeoutMs: 50,
  });
  const progress: string[] = [];
  const readies: OutboundReady[] = [];
  const listener = { progress: (l: string) => progress.push(l), ready: (r: OutboundReady) => readies.push(r) };
  return { system, engine, daemon, logs, progress, readies, listener };
}

/** Starts a session and waits until it reports ready. */
async function up(s: ReturnType<typeof setup>, cfg = config()) {
  const stop = new AbortController();
  const done = s.daemon.outbound(cfg, s.listener, stop.signal);
  done.catch(() => undefined);
  await Promise.race([eventually(() => s.readies.length > 0, 2_000, 'ready'), done]);
  return { stop, done };
}

t.test('bring-up runs its steps in order and reports ready; cancel takes everything down in reverse', async (t) => {
  const s = setup();
  const { stop, done } = await up(s);
  t.strictSame(s.system.calls, [
    'undns',
    'list',
    'list',
    'tun tpts0 1000',
    'up tpts0 65000',
    // Started as root; it drops to the owner itself once the device is open.
    'engine --device tpts0 --mtu 65000 --flows /run/user/1000/telepresence-ts/flows.sock --run-as 1000:1001',
    'route 10.96.0.0/12 tpts0',
    'route 10.244.0.0/16 tpts0',
    'route6 fd00::/108 tpts0',
    'dns 10.255.255.53 5353 40000',
  ]);
  t.strictSame(s.readies, [{ device: 'tpts0', routes: ['10.96.0.0/12', '10.244.0.0/16', 'fd00::/108'], dnsRedirected: ['10.255.255.53'] }]);
  t.ok(s.logs.some((l) => l.includes('not redirecting IPv6 nameserver fd00::53')), 'the IPv6 nameserver is skipped with a note');
  s.system.calls = [];
  stop.abort();
  await done;
  t.strictSame(s.system.calls, ['undns', 'engine stop', 'del tpts0'], 'DNS, engine, device (its routes go with it)');
  t.strictSame(s.system.leftovers(), []);
});

t.test('the device name is the first free tptsN; host bits and duplicates of subnets are dropped', async (t) => {
  const s = setup();
  // A leftover tpts1 is removed first; a link that merely starts with the prefix stays.
  s.system.devices.push('tpts1', 'tpts0x');
  const { stop, done } = await up(s, config({ subnets: ['10.96.3.4/16', '10.96.0.0/16'], dnsPort: 0, mtu: 9000 }));
  t.ok(s.system.calls.includes('del tpts1'), 'a leftover tpts1 is removed');
  t.notOk(s.system.calls.includes('del tpts0x'), 'a link that only looks like ours is left alone');
  t.strictSame(s.readies[0], { device: 'tpts0', routes: ['10.96.0.0/16'], dnsRedirected: [] });
  t.ok(s.system.calls.includes('up tpts0 9000'));
  t.notOk(s.system.calls.some((c) => c.startsWith('dns')), 'dns_port 0: no redirect');
  stop.abort();
  await done;
});

const BAD: Array<[string, Partial<OutboundConfig>, RegExp]> = [
  ['a subnet that is no CIDR', { subnets: ['10.96.0.0/33'] }, /subnet "10.96.0.0\/33"/],
  ['a relative flow socket', { flowSocket: 'flows.sock' }, /not an absolute path/],
  ['a missing flow socket', { flowSocket: '/nope.sock' }, /does not exist/],
  ['a flow socket that is a file', { flowSocket: '/etc/passwd' }, /not a socket/],
  ['a DNS port out of range', { dnsPort: 70000 }, /DNS port 70000/],
  ['no upstream port with DNS on', { dnsUpstreamPort: 0 }, /upstream port 0/],
  ['the upstream port equal to the DNS port', { dnsUpstreamPort: 5353 }, /upstream port 5353/],
  ['an MTU too small for IPv6', { mtu: 1000 }, /MTU 1000/],
  ['an MTU too large', { mtu: 70000 }, /MTU 70000/],
];
for (const [name, over, message] of BAD) {
  t.test(`refuses ${name} before changing anything`, async (t) => {
    const s = setup();
    await t.rejects(s.daemon.outbound(config(over), s.listener), { category: 'user', code: 'bad-outbound-config', message });
    t.strictSame(s.system.calls, [], 'no system call at all');
    t.strictSame(s.engine.engines, []);
  });
}

t.test('validateOutboundConfig applies the default MTU and accepts DNS off without an upstream port', async (t) => {
  const v = await validateOutboundConfig(config({ dnsPort: 0, dnsUpstreamPort: 0, subnets: [] }), async () => 'socket');
  t.equal(v.mtu, 65000);
  t.strictSame(v.subnets, []);
});

// Each failing step, and exactly what must be undone after it.
const FAILURES: Array<{ name: string; arrange: (s: ReturnType<typeof setup>) => void; code: string; category: string; undone: string[] }> = [
  { name: 'creating the device', arrange: (s) => (s.system.failOn = { op: 'createTun' }), code: 'outbound-device-failed', category: 'config', undone: [] },
  { name: 'bringing the device up', arrange: (s) => (s.system.failOn = { op: 'setUp' }), code: 'outbound-device-failed', category: 'config', undone: ['del tpts0'] },
  { name: 'a second route', arrange: (s) => (s.system.failOn = { op: 'addRoute', nth: 2 }), code: 'outbound-route-failed', category: 'config', undone: ['engine stop', 'del tpts0'] },
  { name: 'the DNS redirect', arrange: (s) => (s.system.failOn = { op: 'addDnsRedirect' }), code: 'outbound-dns-failed', category: 'config', undone: ['undns', 'engine stop', 'del tpts0'] },
];
for (const f of FAILURES) {
  t.test(`a failure at ${f.name} undoes what was done, in reverse, and names the step`, async (t) => {
    const s = setup();
    f.arrange(s);
    const err = await s.daemon.outbound(config(), s.listener).catch((e: unknown) => e);
    t.ok(err instanceof TpError);
    t.match(err, { code: f.code, category: f.category });
    t.type((err as TpError).hint, 'string', 'it says what to do');
    // What ran after the failing call: the undo list.
    const last = s.system.calls.slice(-f.undone.length || s.system.calls.length);
    if (f.undone.length > 0) t.strictSame(last, f.undone);
    else t.notOk(s.system.calls.some((c) => c.startsWith('del') || c === 'engine stop'), 'nothing to undo');
    t.strictSame(s.system.leftovers(), []);
    t.strictSame(s.readies, []);
  });
}

const ENGINE_FAILURES: Array<[string, 'silent' | 'crash' | 'missing', string, RegExp]> = [
  ['never says ready', 'silent', 'internal', /no `ready` from \/opt\/tp\/dist\/bin\/tp-netstack within 50 ms/],
  ['exits before ready', 'crash', 'internal', /exited with code 1: tp-netstack: cannot drop privileges: setuid\(1000\): operation not permitted/],
  ['is missing', 'missing', 'config', /tp-netstack does not exist/],
];
for (const [name, behaviour, category, message] of ENGINE_FAILURES) {
  t.test(`an engine that ${name} fails the engine step; the device is removed`, async (t) => {
    const s = setup({ behaviour: () => behaviour });
    await t.rejects(s.daemon.outbound(config(), s.listener), { code: 'outbound-engine-failed', category, message });
    t.strictSame(s.system.calls.slice(-2), ['engine stop', 'del tpts0']);
    t.notOk(s.system.calls.some((c) => c.startsWith('route')), 'no route was added');
  });
}

t.test('a second concurrent call is refused while the first is up; after it ends, a new one works', async (t) => {
  const s = setup();
  const first = await up(s);
  const calls = s.system.calls.length;
  await t.rejects(s.daemon.outbound(config(), s.listener), { category: 'user', code: 'outbound-busy', hint: /quit/ });
  t.equal(s.system.calls.length, calls, 'the refusal changed nothing');
  first.stop.abort();
  // Called while the first is still being taken down: waits for it instead of refusing.
  const second = s.daemon.outbound(config(), s.listener, AbortSignal.timeout(10_000));
  second.catch(() => undefined);
  await eventually(() => s.readies.length === 2, 2_000, 'the second ready');
  await first.done;
  t.equal(s.readies[1]?.device, 'tpts0', 'the name is free again');
  await s.daemon.shutdown();
  await second;
  t.strictSame(s.system.leftovers(), []);
});

t.test('when the engine dies, access is taken down and the call ends with engine-exited', async (t) => {
  const s = setup();
  const { done } = await up(s);
  s.engine.engines[0]?.die();
  const err = await done.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { category: 'internal', code: 'engine-exited', message: /exited with code 2: panic: flow socket closed/, hint: /connect again/ });
  t.strictSame(s.system.calls.slice(-3), ['undns', 'engine stop', 'del tpts0']);
  t.strictSame(s.system.leftovers(), []);
});

t.test('shutdown ends a session normally and waits for its teardown', async (t) => {
  const s = setup();
  const { done } = await up(s);
  await s.daemon.shutdown();
  t.strictSame(s.system.leftovers(), [], 'down by the time shutdown resolves');
  await t.resolves(done);
  await t.resolves(s.daemon.shutdown(), 'a second shutdown is a no-op');
});

t.test('a cancel during bring-up stops it and undoes what was done', async (t) => {
  const s = setup({ behaviour: () => 'silent' });
  const stop = new AbortController();
  const done = s.daemon.outbound(config(), s.listener, stop.signal);
  await eventually(() => s.engine.engines.length === 1, 2_000, 'the engine start');
  stop.abort();
  await t.rejects(done, { code: 'outbound-cancelled' });
  t.strictSame(s.system.leftovers(), []);
});

t.test('removeLeftovers removes our devices and chain only', async (t) => {
  const s = setup();
  s.system.devices.push('tpts0', 'tpts3', 'tptsx', 'docker0');
  s.system.dns = true;
  t.strictSame(await s.daemon.removeLeftovers(), ['DNS redirect', 'tpts0', 'tpts3']);
  t.strictSame(s.system.devices, ['lo', 'eth0', 'tptsx', 'docker0']);
  t.strictSame(s.daemon.version(), { version: '1.2.3', ownerUid: 1000 });
});

t.test('no IPv4 nameserver: DNS is not redirected, with a progress line', async (t) => {
  const s = setup({ resolv: 'nameserver fd00::53\n' });
  const { stop, done } = await up(s);
  t.strictSame(s.readies[0]?.dnsRedirected, []);
  t.ok(s.progress.some((l) => l.includes('no IPv4 nameserver')));
  t.notOk(s.system.calls.some((c) => c.startsWith('dns')));
  stop.abort();
  await done;
});
