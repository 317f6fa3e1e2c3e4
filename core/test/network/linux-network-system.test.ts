import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import type { OutboundReady } from '@telepresence-ts/proto/network/v1';
import { linuxNetworkSystem } from '../../src/network/linux-network-system.js';
import { NetworkDaemon } from '../../src/network/network-daemon.js';
import { nodeEngineSpawner } from '../../src/network/node-engine.js';
import type { EngineProcess } from '../../src/network/engine.js';
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

  // A tiny engine: reports who it was started as, says ready, then waits on stdin as the real one
  // does. (The real one's drop to the owner is proven by the next test.)
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
  t.ok(logs.includes('engine: uid=0 gid=0 groups=0'), `the engine is started as root, to open the device (${logs.join(' | ')})`);
  t.ok(logs.includes(`engine: args=--device tpts0 --mtu 65000 --flows ${flowSocket} --run-as 65534:65534`), 'and told whom to become');

  stop.abort();
  await done;
  t.notMatch(inNs('ip', 'link'), /tpts/, 'the device is gone');
  t.notMatch(inNs('ip', 'route'), /10\.96/, 'its routes went with it');
  t.notMatch(inNs('ip', '-6', 'route'), /fd00:96/);
  t.notMatch(inNs('iptables', '-t', 'nat', '-S'), /TPTS/, 'no jump, no chain');
});

// The engine as built by scripts/build-netstack.sh; the test below needs it and says so when absent.
const BUILT_ENGINE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dist/bin/tp-netstack');
const realEngineSkip = !isRoot ? 'needs root (ip netns)' : !existsSync(BUILT_ENGINE) ? 'needs dist/bin/tp-netstack (bash scripts/build-netstack.sh)' : false;

/** The lines of /proc/PID/status that say who a process is and what it may do. */
function identityOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(Uid|Gid|Groups|CapPrm|CapEff|CapAmb):\s*(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2].trim().replace(/\s+/g, ' ');
  }
  return out;
}

t.test('the real engine opens the device as root, then runs as the owner with no capabilities, and carries a connection', { skip: realEngineSkip }, async (t) => {
  const ns = `tpts-test-eng-${process.pid}`;
  const sh = (...args: string[]): string => execFileSync(args[0] ?? '', args.slice(1), { encoding: 'utf8' });
  sh('ip', 'netns', 'add', ns);
  t.teardown(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });
  sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  // The kernel needs an address to give a routed connection as its source; the workstation's
  // would come from its own interface.
  sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.99.0.2/32', 'dev', 'lo');

  const dir = mkdtempSync(join(tmpdir(), 'tpts-engine-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  // The daemon spawns its engine in its own namespace; this one runs it inside the test's.
  // `ip netns exec` execs the engine, so the pid the daemon sees is the engine's.
  const enginePath = join(dir, 'engine-in-ns');
  writeFileSync(enginePath, `#!/bin/sh\nexec ip netns exec ${ns} ${BUILT_ENGINE} "$@"\n`, { mode: 0o755 });

  // A flow socket that answers "connected" and echoes what the client sent.
  const headers: string[] = [];
  const flowSocket = join(dir, 'flows.sock');
  const flows = createServer((conn: Socket) => {
    let buf = Buffer.alloc(0);
    let connected = false;
    conn.on('data', (chunk: Buffer) => {
      if (connected) {
        conn.end(Buffer.concat([Buffer.from('echo:'), chunk]));
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      headers.push(buf.subarray(0, nl).toString('utf8'));
      connected = true;
      conn.write(Buffer.from([0]));
      const rest = buf.subarray(nl + 1);
      if (rest.length > 0) conn.end(Buffer.concat([Buffer.from('echo:'), rest]));
    });
    conn.on('error', () => undefined);
  });
  await new Promise<void>((done) => flows.listen(flowSocket, done));
  t.teardown(() => flows.close());
  // The engine dials it as the owner, uid 65534.
  chmodSync(flowSocket, 0o666);

  const logs: string[] = [];
  const log = (_l: string, m: string): void => void logs.push(m);
  let engine: EngineProcess | undefined;
  const spawnReal = nodeEngineSpawner(log);
  const daemon = new NetworkDaemon({
    system: linuxNetworkSystem({ runner: nodeProcessRunner, log, prefix: ['ip', 'netns', 'exec', ns] }),
    spawnEngine: (spec) => (engine = spawnReal(spec)),
    enginePath,
    owner: { uid: 65534, gid: 65534 },
    version: 'test',
    log,
    readResolvConf: async () => '',
    pathKind: async () => 'socket',
  });
  const readies: OutboundReady[] = [];
  const stop = new AbortController();
  const done = daemon.outbound({ subnets: ['10.200.0.0/24'], flowSocket, dnsPort: 0, dnsUpstreamPort: 0, mtu: 0 }, { progress: () => undefined, ready: (r) => readies.push(r) }, stop.signal);
  done.catch(() => undefined);
  await Promise.race([eventually(() => readies.length > 0, 10_000, 'outbound ready'), done]);
  t.equal(readies[0]?.device, 'tpts0');

  const pid = engine?.pid;
  if (pid === undefined) throw new Error('the engine has no pid');
  t.strictSame(
    identityOf(pid),
    { Uid: '65534 65534 65534 65534', Gid: '65534 65534 65534 65534', Groups: '', CapPrm: '0000000000000000', CapEff: '0000000000000000', CapAmb: '0000000000000000' },
    'real, effective, saved and fs ids are the owner\'s; no groups, no capabilities',
  );
  t.ok(logs.includes('engine: tp-netstack: opened tpts0, now running as 65534:65534'), logs.join(' | '));

  // A connection from inside the namespace, routed into the device, reaches the flow socket.
  // Async: the flow server runs in this very process.
  const client = `const c=require('node:net').connect(80,'10.200.0.1',()=>c.write('hello'));c.setTimeout(5000,()=>process.exit(3));c.on('data',(d)=>{process.stdout.write(d);c.end()})`;
  const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', ns, process.execPath, '-e', client], { timeout: 10_000 });
  t.equal(stdout, 'echo:hello');
  t.match(headers, [/^\{"proto":"tcp","src":"10\.99\.0\.2:\d+","dst":"10\.200\.0\.1:80"\}$/]);

  stop.abort();
  await done;
  t.notMatch(sh('ip', 'netns', 'exec', ns, 'ip', 'link'), /tpts/, 'the device is gone');
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
