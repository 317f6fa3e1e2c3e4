import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import t from 'tap';
import type { OutboundReady } from '@telepresence-ts/proto/network/v1';
import { linuxNetworkSystem } from '../../src/network/linux-network-system.js';
import { NetworkDaemon } from '../../src/network/network-daemon.js';
import { nodeEngineSpawner } from '../../src/network/node-engine.js';
import { nodeProcessRunner } from '../../src/process/node-process-runner.js';
import type { ProcessRunner, RunOutput } from '../../src/process/process-runner.js';
import { eventually } from '../fixtures/eventually.js';

/** A runner that records command lines and answers from a script keyed by the command line. */
function recordingRunner(answers: Record<string, Partial<RunOutput>> = {}) {
  const lines: string[][] = [];
  const runner: ProcessRunner = {
    async run(command, args) {
      const line = [command, ...args];
      lines.push(line);
      return { exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, ...answers[line.join(' ')] };
    },
    start() {
      throw new Error('not used');
    },
  };
  return { runner, lines };
}

t.test('the adapter runs exactly these command lines', async (t) => {
  const { runner, lines } = recordingRunner({
    'ip -o link show': { stdout: '1: lo: <LOOPBACK,UP> mtu 65536\n7: tpts0: <POINTOPOINT> mtu 65000\n9: veth1@if2: <BROADCAST>\n' },
  });
  const sys = linuxNetworkSystem({ runner, log: () => undefined });
  t.strictSame(await sys.listDevices(), ['lo', 'tpts0', 'veth1']);
  await sys.createTun('tpts0', 1000);
  await sys.setUp('tpts0', 65000);
  await sys.addRoute('tpts0', '10.96.0.0/12', 4);
  await sys.addRoute('tpts0', 'fd00::/108', 6);
  await sys.addDnsRedirect({ nameservers: ['10.255.255.53', '8.8.8.8'], dnsPort: 5353, upstreamPort: 40000 });
  await sys.deleteDevice('tpts0');
  const nat = ['iptables', '-w', '5', '-t', 'nat'];
  t.strictSame(lines, [
    ['ip', '-o', 'link', 'show'],
    ['ip', 'tuntap', 'add', 'dev', 'tpts0', 'mode', 'tun', 'user', '1000'],
    ['ip', 'link', 'set', 'dev', 'tpts0', 'mtu', '65000', 'up'],
    ['ip', 'route', 'add', '10.96.0.0/12', 'dev', 'tpts0'],
    ['ip', '-6', 'route', 'add', 'fd00::/108', 'dev', 'tpts0'],
    [...nat, '-N', 'TPTS-DNS'],
    [...nat, '-A', 'TPTS-DNS', '-p', 'udp', '--sport', '40000', '-j', 'RETURN'],
    [...nat, '-A', 'TPTS-DNS', '-p', 'udp', '-d', '10.255.255.53', '--dport', '53', '-j', 'REDIRECT', '--to-ports', '5353'],
    [...nat, '-A', 'TPTS-DNS', '-p', 'udp', '-d', '8.8.8.8', '--dport', '53', '-j', 'REDIRECT', '--to-ports', '5353'],
    [...nat, '-I', 'OUTPUT', '1', '-p', 'udp', '--dport', '53', '-j', 'TPTS-DNS'],
    ['ip', 'link', 'del', 'dev', 'tpts0'],
  ]);
});

t.test('removing the redirect deletes every jump to the chain, then flushes and deletes the chain', async (t) => {
  const nat = ['iptables', '-w', '5', '-t', 'nat'];
  const { runner, lines } = recordingRunner({
    [['ip', 'netns', 'exec', 'x', ...nat, '-S', 'OUTPUT'].join(' ')]: {
      stdout: '-P OUTPUT ACCEPT\n-A OUTPUT -p udp -m udp --dport 53 -j TPTS-DNS\n-A OUTPUT -j KUBE-SERVICES\n-A OUTPUT -j TPTS-DNS\n',
    },
  });
  const sys = linuxNetworkSystem({ runner, log: () => undefined, prefix: ['ip', 'netns', 'exec', 'x'] });
  t.equal(await sys.removeDnsRedirect(), true);
  const p = ['ip', 'netns', 'exec', 'x', ...nat];
  t.strictSame(lines, [
    [...p, '-S', 'OUTPUT'],
    [...p, '-D', 'OUTPUT', '-p', 'udp', '-m', 'udp', '--dport', '53', '-j', 'TPTS-DNS'],
    [...p, '-D', 'OUTPUT', '-j', 'TPTS-DNS'],
    [...p, '-S', 'TPTS-DNS'],
    [...p, '-F', 'TPTS-DNS'],
    [...p, '-X', 'TPTS-DNS'],
  ]);
});

t.test('removal is a no-op without the chain, or without iptables at all; a failing command names itself', async (t) => {
  const nat = 'iptables -w 5 -t nat';
  const absent = recordingRunner({ [`${nat} -S TPTS-DNS`]: { exitCode: 1, stderr: 'iptables: No chain/target/match by that name.' } });
  t.equal(await linuxNetworkSystem({ runner: absent.runner, log: () => undefined }).removeDnsRedirect(), false);
  t.equal(absent.lines.length, 2);
  const missing = recordingRunner({ [`${nat} -S OUTPUT`]: { exitCode: null, startError: Object.assign(new Error('ENOENT'), { code: 'ENOENT' }) } });
  t.equal(await linuxNetworkSystem({ runner: missing.runner, log: () => undefined }).removeDnsRedirect(), false);
  const failing = recordingRunner({ 'ip route add 10.0.0.0/8 dev tpts0': { exitCode: 2, stderr: 'RTNETLINK answers: File exists\n' } });
  await t.rejects(linuxNetworkSystem({ runner: failing.runner, log: () => undefined }).addRoute('tpts0', '10.0.0.0/8', 4), {
    code: 'network-command-failed',
    message: '`ip route add 10.0.0.0/8 dev tpts0` failed: RTNETLINK answers: File exists',
  });
});

// The real thing, inside a network namespace of its own: this machine is root, and nothing the
// test does may touch the host's own links, routes or DNS.
const isRoot = process.getuid?.() === 0;
t.test('in a fresh network namespace: device owned by uid 65534, engine, routes, DNS redirect, and nothing left after', { skip: isRoot ? false : 'needs root (ip netns)' }, async (t) => {
  const ns = `tpts-test-${process.pid}`;
  const sh = (...args: string[]): string => execFileSync(args[0] ?? '', args.slice(1), { encoding: 'utf8' });
  const inNs = (...args: string[]): string => sh('ip', 'netns', 'exec', ns, ...args);
  sh('ip', 'netns', 'add', ns);
  t.teardown(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });
  inNs('ip', 'link', 'set', 'lo', 'up');

  // A tiny engine: checks who it runs as, says ready, then waits on stdin as the real one does.
  const dir = mkdtempSync(join(tmpdir(), 'tpts-engine-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const enginePath = join(dir, 'fake-engine');
  writeFileSync(enginePath, `#!/bin/sh\necho "args=$*" >&2\necho "uid=$(id -u) gid=$(id -g) groups=$(id -G)" >&2\necho ready\nexec cat >/dev/null\n`, { mode: 0o755 });
  const flowSocket = join(dir, 'flows.sock');
  const flows = createServer();
  await new Promise<void>((resolve) => flows.listen(flowSocket, resolve));
  t.teardown(() => flows.close());

  const logs: string[] = [];
  const log = (_l: string, m: string): void => void logs.push(m);
  const prefix = ['ip', 'netns', 'exec', ns];
  const system = linuxNetworkSystem({ runner: nodeProcessRunner, log, prefix });
  const daemon = new NetworkDaemon({
    system,
    spawnEngine: nodeEngineSpawner(log),
    enginePath,
    owner: { uid: 65534, gid: 65534 },
    version: 'test',
    log,
    readResolvConf: async () => 'nameserver 10.255.255.53\nnameserver 192.0.2.53\n',
    pathKind: async () => 'socket',
  });
  // /dev/net/tun may be 0600 on this host; the fake engine does not open it, so check the policy
  // separately and let the rest proceed.
  const tunOpenable = await system.tunOpenableBy(65534, 65534);
  system.tunOpenableBy = async () => true;

  const readies: OutboundReady[] = [];
  const stop = new AbortController();
  const done = daemon.outbound(
    { subnets: ['10.96.0.0/12', 'fd00:96::/108'], flowSocket, dnsPort: 5353, dnsUpstreamPort: 40000, mtu: 0 },
    { progress: () => undefined, ready: (r) => readies.push(r) },
    stop.signal,
  );
  done.catch(() => undefined);
  await Promise.race([eventually(() => readies.length > 0, 10_000, 'outbound ready'), done]);
  t.strictSame(readies[0], { device: 'tpts0', routes: ['10.96.0.0/12', 'fd00:96::/108'], dnsRedirected: ['10.255.255.53', '192.0.2.53'] });

  const link = inNs('ip', '-d', 'link', 'show', 'tpts0');
  t.match(link, /mtu 65000/);
  t.match(link, /<[^>]*\bUP\b[^>]*> mtu 65000/, 'up, at the default MTU');
  t.match(inNs('ip', 'tuntap', 'show'), /^tpts0: tun persist user 65534$/m, 'the TUN device belongs to uid 65534');
  t.match(inNs('ip', 'route'), /10\.96\.0\.0\/12 dev tpts0/);
  t.match(inNs('ip', '-6', 'route'), /fd00:96::\/108 dev tpts0/);
  const rules = inNs('iptables', '-t', 'nat', '-S');
  t.match(rules, /-A OUTPUT -p udp -m udp --dport 53 -j TPTS-DNS/);
  t.match(rules, /-A TPTS-DNS -p udp -m udp --sport 40000 -j RETURN/);
  t.match(rules, /-A TPTS-DNS -d 10\.255\.255\.53\/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353/);
  t.ok(logs.includes('engine: uid=65534 gid=65534 groups=65534'), `the engine runs as the owner, without root's groups (${logs.join(' | ')})`);
  t.ok(logs.includes(`engine: args=--device tpts0 --mtu 65000 --flows ${flowSocket}`));

  stop.abort();
  await done;
  t.notMatch(inNs('ip', 'link'), /tpts/, 'the device is gone');
  t.notMatch(inNs('ip', 'route'), /10\.96/, 'its routes went with it');
  t.notMatch(inNs('ip', '-6', 'route'), /fd00:96/);
  t.notMatch(inNs('iptables', '-t', 'nat', '-S'), /TPTS/, 'no jump, no chain');
  // 0666 on most distributions, 0600 on some hosts: then only root may open it.
  t.equal(tunOpenable, (statSync('/dev/net/tun').mode & 0o006) === 0o006, '/dev/net/tun policy follows its mode');
});

t.test('a crashed daemon\'s leftovers in a namespace are removed at the next start', { skip: isRoot ? false : 'needs root (ip netns)' }, async (t) => {
  const ns = `tpts-test-left-${process.pid}`;
  const inNs = (...args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });
  const system = linuxNetworkSystem({ runner: nodeProcessRunner, log: () => undefined, prefix: ['ip', 'netns', 'exec', ns] });
  await system.createTun('tpts0', 65534);
  await system.createTun('tpts2', 65534);
  await system.addDnsRedirect({ nameservers: ['10.255.255.53'], dnsPort: 5353, upstreamPort: 40000 });
  const daemon = new NetworkDaemon({
    system,
    spawnEngine: () => {
      throw new Error('not used');
    },
    enginePath: '/nonexistent',
    owner: { uid: 65534, gid: 65534 },
    version: 'test',
    log: () => undefined,
    readResolvConf: async () => '',
    pathKind: async () => 'missing',
  });
  t.strictSame(await daemon.removeLeftovers(), ['DNS redirect', 'tpts0', 'tpts2']);
  t.notMatch(inNs('ip', 'link'), /tpts/);
  t.notMatch(inNs('iptables', '-t', 'nat', '-S'), /TPTS/);
});
