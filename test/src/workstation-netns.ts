/**
 * A stand-in workstation for the outbound-access suites: a network namespace of its own that
 * reaches only the cluster's API server (and its own loopback).
 *
 * Why: the test cluster's node is this machine, so its root network namespace already reaches
 * every pod and service address through kube-proxy and the CNI bridge. A curl from there proves
 * nothing about the product. From inside this namespace, a cluster address answers only if the
 * product carried the packets (docs/cluster-harness.md, "Network").
 *
 * What `createWorkstationNetns` builds, and `destroy` takes away again:
 *   - `ip netns add tp-ws-<id>` with loopback up;
 *   - a veth pair to the root namespace on a private /30 out of 10.243.254.0/24 (one free for
 *     this run), and inside the namespace one host route, to the API server, via that veth.
 *     No default route: anything else is "network unreachable" until the product routes it;
 *   - `/etc/netns/<name>/resolv.conf` naming 127.0.0.1, where a dnsmasq inside the namespace
 *     answers as the workstation's ordinary DNS: `outside.test` (and any other names the caller
 *     gives) with fixed addresses, NXDOMAIN for everything else. It never forwards anywhere;
 *   - temp folders for the CLI's XDG_RUNTIME_DIR, XDG_CACHE_HOME and network-daemon socket, so
 *     nothing collides with a daemon of the root namespace or of another suite.
 *
 * `leftovers()` compares the namespace with a snapshot taken right after it was built (links,
 * routes, policy rules, iptables, resolv.conf, processes, sockets) and names every difference.
 */
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import { relayLoopbackPort, type LoopbackRelay } from './loopback-relay.js';
import { formatCommandLine, processRunner, type LongRunning, type ProcessRunner, type RunResult } from './process-runner.js';

// ---------------------------------------------------------------------------------------------
// Pure parts (unit-tested in test/test/workstation-netns.test.ts)

/** Where the /30s come from: inside the harness's 10.243.0.0/16, next to the node's 10.243.255.1. */
export const NETNS_POOL = '10.243.254.0/24';

/** An IPv4 address as a number (0..2^32-1); throws on anything else. */
export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** An IPv4 CIDR as its first and last address; a bare address is a /32. */
export function ipv4Range(cidr: string): { first: number; last: number; bits: number } {
  const [addr = '', prefix] = cidr.split('/');
  const bits = prefix === undefined ? 32 : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - bits);
  const first = Math.floor(ipv4ToInt(addr) / size) * size;
  return { first, last: first + size - 1, bits };
}

export function ipv4Overlaps(a: string, b: string): boolean {
  const x = ipv4Range(a);
  const y = ipv4Range(b);
  return x.first <= y.last && y.first <= x.last;
}

export function ipv4Contains(cidr: string, ip: string): boolean {
  const r = ipv4Range(cidr);
  const n = ipv4ToInt(ip);
  return r.first <= n && n <= r.last;
}

export interface VethSubnet {
  /** e.g. 10.243.254.8/30 */
  readonly cidr: string;
  /** The root namespace's end, the namespace's gateway to the API server: .9 */
  readonly hostAddress: string;
  /** The namespace's end: .10 */
  readonly nsAddress: string;
}

/**
 * A /30 of `pool` that overlaps none of `used` (the CIDRs of the root namespace's addresses and
 * routes, so that two suites running at once, or a leftover of a killed run, never share one),
 * chosen by `random` in [0, 1) among the free ones. Throws when none is free.
 */
export function allocateVethSubnet(used: readonly string[], random: () => number = Math.random, pool: string = NETNS_POOL): VethSubnet {
  const range = ipv4Range(pool);
  const v4Used = used.filter((c) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(c));
  const free: number[] = [];
  for (let base = range.first; base + 3 <= range.last; base += 4) {
    const cidr = `${intToIpv4(base)}/30`;
    if (!v4Used.some((u) => ipv4Overlaps(u, cidr))) free.push(base);
  }
  if (free.length === 0) {
    throw new Error(`no free /30 left in ${pool}: every one overlaps an address or route of this machine (leftover namespaces? see \`ip netns list\`)`);
  }
  const base = free[Math.min(free.length - 1, Math.floor(random() * free.length))] as number;
  return { cidr: `${intToIpv4(base)}/30`, hostAddress: intToIpv4(base + 1), nsAddress: intToIpv4(base + 2) };
}

/** The CIDRs of `ip -j addr show` (addresses with their prefix) and `ip -j route show` (destinations). */
export function usedCidrs(addrJson: string, routeJson: string): string[] {
  const out: string[] = [];
  const addrs = JSON.parse(addrJson || '[]') as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
  for (const link of addrs) {
    for (const a of link.addr_info ?? []) {
      if (a.local !== undefined && a.prefixlen !== undefined) out.push(`${a.local}/${a.prefixlen}`);
    }
  }
  const routes = JSON.parse(routeJson || '[]') as Array<{ dst?: string }>;
  for (const r of routes) {
    if (r.dst !== undefined && r.dst !== 'default') out.push(r.dst);
  }
  return out;
}

/** The API server's host and port from a kubeconfig (its one server; the port 443 when none is written). */
export function apiServerEndpoint(kubeconfigYaml: string): { host: string; port: number } {
  const servers = [...kubeconfigYaml.matchAll(/^\s*server:\s*["']?(https?):\/\/(\[[^\]]+\]|[^:/"'\s]+)(?::(\d+))?/gm)].map(
    (m) => `${m[2] as string}:${m[3] ?? (m[1] === 'http' ? '80' : '443')}`,
  );
  const unique = [...new Set(servers)];
  if (unique.length !== 1) {
    throw new Error(`expected one API server in the kubeconfig, found ${unique.length === 0 ? 'none' : unique.join(', ')}`);
  }
  const at = (unique[0] as string).lastIndexOf(':');
  return { host: (unique[0] as string).slice(0, at), port: Number((unique[0] as string).slice(at + 1)) };
}


/** One state of the namespace, each part as sorted, normalised lines; see `snapshotDiff`. */
export interface NetnsSnapshot {
  readonly links: readonly string[];
  readonly routes: readonly string[];
  readonly rules: readonly string[];
  readonly iptables: readonly string[];
  readonly resolvConf: string;
  readonly hostResolvConf: string;
  readonly processes: readonly string[];
  readonly sockets: readonly string[];
}

export type LeftoverKind = keyof NetnsSnapshot;

/**
 * What `now` has that `baseline` has not, one line per thing, e.g. `link tpts0 (tun)` or
 * `iptables -A OUTPUT -p udp ... -j TPTS-DNS`; changed files as `resolvConf changed: ...`.
 * Things the baseline had and `now` lacks are named too (`gone: ...`): losing the veth route
 * matters as much as gaining a TUN route.
 */
export function snapshotDiff(baseline: NetnsSnapshot, now: NetnsSnapshot, ignore: readonly LeftoverKind[] = []): string[] {
  const out: string[] = [];
  const lists: Array<Exclude<LeftoverKind, 'resolvConf' | 'hostResolvConf'>> = ['links', 'routes', 'rules', 'iptables', 'processes', 'sockets'];
  for (const kind of lists) {
    if (ignore.includes(kind)) continue;
    const before = new Set(baseline[kind]);
    const after = new Set(now[kind]);
    for (const line of now[kind]) if (!before.has(line)) out.push(`${kind}: ${line}`);
    for (const line of baseline[kind]) if (!after.has(line)) out.push(`${kind} gone: ${line}`);
  }
  for (const kind of ['resolvConf', 'hostResolvConf'] as const) {
    if (ignore.includes(kind)) continue;
    if (baseline[kind] !== now[kind]) out.push(`${kind} changed: ${JSON.stringify(baseline[kind])} -> ${JSON.stringify(now[kind])}`);
  }
  return out;
}

const BUILTIN_CHAIN_ACCEPTING = /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT\b/;

/**
 * `iptables-save` output without comments and packet counters, sorted, so two runs compare.
 * Built-in chains that accept by default are left out too: with the nft back end a table, once
 * used, stays listed with its empty built-in chains, which is the same as no table at all.
 */
export function normaliseIptablesSave(text: string, backend: string): string[] {
  let table = '';
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'COMMIT' || BUILTIN_CHAIN_ACCEPTING.test(line)) continue;
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    out.push(`${backend} ${table} ${line.replace(/\s*\[\d+:\d+\]$/, '')}`);
  }
  return out.sort();
}

/** `ip -j link` as `name (kind)` lines; `ip -d -j link` supplies the kind (tun, veth...). */
export function linkLines(json: string): string[] {
  const links = JSON.parse(json || '[]') as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>;
  return links.map((l) => `${l.ifname} (${l.linkinfo?.info_kind ?? 'device'})`).sort();
}

/** `ip -j route show table all` as stable one-line strings (no volatile fields). */
export function routeLines(json: string, family: string): string[] {
  const routes = JSON.parse(json || '[]') as Array<{ type?: string; dst?: string; gateway?: string; dev?: string; table?: string }>;
  return routes
    .map((r) => {
      const parts = [family, r.type ?? 'unicast', r.dst ?? '?'];
      if (r.gateway !== undefined) parts.push(`via ${r.gateway}`);
      if (r.dev !== undefined) parts.push(`dev ${r.dev}`);
      if (r.table !== undefined) parts.push(`table ${r.table}`);
      return parts.join(' ');
    })
    .sort();
}

// ---------------------------------------------------------------------------------------------
// The namespace

export interface NetnsRunOptions {
  /** The whole environment of the command (default: `env` of the namespace, the CLI's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  readonly input?: string;
  /** Run as this user and group (`setpriv --reuid --regid --clear-groups`), e.g. 65534 (nobody). */
  readonly as?: { readonly uid: number; readonly gid: number };
}

export interface UnprivilegedUser {
  readonly uid: number;
  readonly gid: number;
  /** HOME, XDG dirs, a network socket path and a self-contained kubeconfig, all its own. */
  readonly env: NodeJS.ProcessEnv;
}

export interface WorkstationNetns {
  /** `tp-ws-<id>` */
  readonly name: string;
  readonly subnet: VethSubnet;
  /** The root namespace's end of the veth pair, and the namespace's. */
  readonly hostVeth: string;
  readonly nsVeth: string;
  /** The only address outside the namespace it can reach. */
  readonly apiServer: string;
  /** The environment the CLI gets inside: PATH with dist/bin, KUBECONFIG, its own XDG dirs. */
  readonly env: NodeJS.ProcessEnv;
  readonly runtimeDir: string;
  readonly cacheDir: string;
  readonly networkSocket: string;
  /** The user daemon's log (`$XDG_CACHE_HOME/telepresence-ts/daemon.log`); '' while there is none. */
  daemonLog(): string;
  /** Every query the namespace's own DNS server saw, one line each (dnsmasq --log-queries). */
  dnsLog(): string;
  /** Runs `argv` inside the namespace to completion (default timeout 60 s). */
  run(argv: readonly string[], options?: NetnsRunOptions): Promise<RunResult>;
  /** Starts `argv` inside the namespace and leaves it running; `destroy` stops it if nobody did. */
  spawn(argv: readonly string[], options?: Omit<NetnsRunOptions, 'timeoutMs' | 'input'>): LongRunning;
  /** A user other than root (default nobody) with folders and a kubeconfig it can use; made once, on the first call. */
  unprivileged(uid?: number, gid?: number): Promise<UnprivilegedUser>;
  /** What the namespace has now that it had not when it was built (see `snapshotDiff`). */
  leftovers(ignore?: readonly LeftoverKind[]): Promise<string[]>;
  /** Stops every process inside, removes the namespace, veth, /etc/netns/<name> and temp folders, and checks that they are gone. */
  destroy(): Promise<void>;
}

export interface WorkstationNetnsOptions {
  readonly repoRoot: string;
  readonly kubeconfig: string;
  /** Names the namespace's DNS answers, besides `outside.test` -> 192.0.2.10. */
  readonly hosts?: Readonly<Record<string, string>>;
  readonly runner?: ProcessRunner;
}

/** The answer the namespace's DNS gives for a name outside the cluster (TEST-NET-1: never dialled). */
export const OUTSIDE_NAME = 'outside.test';
export const OUTSIDE_ADDRESS = '192.0.2.10';

/** node-tap's variables, which its process tracking adds to every child process. */
const TEST_RUNNER_ENV = /^(NODE_OPTIONS|TAP|TAP_.*|_TAPJS_.*)$/;

// `ip` and friends answer in milliseconds; this only stops a wedged one from hanging the suite.
const TOOL_TIMEOUT_MS = 15_000;
const DEFAULT_RUN_TIMEOUT_MS = 60_000;

/**
 * Builds the namespace. On any failure part-way, whatever was made is taken away again before
 * the error is thrown. Needs root.
 */
export async function createWorkstationNetns(options: WorkstationNetnsOptions): Promise<WorkstationNetns> {
  if (process.getuid?.() !== 0) throw new Error('a workstation network namespace needs root (ip netns add)');
  const runner = options.runner ?? processRunner;
  const tool = async (command: string, args: readonly string[]): Promise<string> => {
    const r = await runner.run(command, args, { timeoutMs: TOOL_TIMEOUT_MS });
    if (r.exitCode !== 0 || r.timedOut) {
      throw new Error(`${formatCommandLine(command, args)} ${r.timedOut ? 'timed out' : `exited ${String(r.exitCode)}`}: ${r.stderr.trim()}`);
    }
    return r.stdout;
  };

  const id = randomBytes(3).toString('hex');
  const name = `tp-ws-${id}`;
  // Interface names have at most 15 characters; `tpws` keeps clear of the product's `tpts*`.
  const hostVeth = `tpws${id}h`;
  const nsVeth = `tpws${id}n`;
  const { host: apiServer, port: apiServerPort } = apiServerEndpoint(readFileSync(options.kubeconfig, 'utf8'));
  const loopbackApi = apiServer === 'localhost' || apiServer.startsWith('127.');
  if (!loopbackApi && !/^\d+\.\d+\.\d+\.\d+$/.test(apiServer)) {
    throw new Error(`the API server is at ${apiServer}: an isolated namespace reaches an IPv4 address of this machine, or its loopback`);
  }

  const work = mkdtempSync(join(tmpdir(), `${name}-`));
  const runtimeDir = join(work, 'run');
  const cacheDir = join(work, 'cache');
  const networkSocket = join(runtimeDir, 'network.sock');
  mkdirSync(runtimeDir, { mode: 0o700 });
  mkdirSync(cacheDir);
  const etcDir = `/etc/netns/${name}`;
  const dnsLogPath = join(work, 'dnsmasq.log');

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${join(options.repoRoot, 'dist', 'bin')}:${process.env['PATH'] ?? ''}`,
    KUBECONFIG: options.kubeconfig,
    XDG_RUNTIME_DIR: runtimeDir,
    XDG_CACHE_HOME: cacheDir,
    TELEPRESENCE_NETWORK_SOCKET: networkSocket,
  };

  const started: LongRunning[] = [];
  let dnsmasq: LongRunning | undefined;
  let relay: LoopbackRelay | undefined;
  let unprivileged: UnprivilegedUser | undefined;
  const extraDirs: string[] = [];

  // `env -i` with the environment spelled out: node-tap's process tracking adds NODE_OPTIONS and
  // its own variables to every child it sees spawned, whatever env was asked for. Inside, the
  // product's processes must run as a user's would (and a user other than root cannot write
  // tap's files at all).
  const nsArgv = (argv: readonly string[], o: Pick<NetnsRunOptions, 'as' | 'env'>): string[] => [
    'netns',
    'exec',
    name,
    ...(o.as === undefined ? [] : ['setpriv', `--reuid=${o.as.uid}`, `--regid=${o.as.gid}`, '--clear-groups', '--']),
    'env',
    '-i',
    ...Object.entries(o.env ?? env)
      .filter(([k, v]) => v !== undefined && !TEST_RUNNER_ENV.test(k))
      .map(([k, v]) => `${k}=${String(v)}`),
    ...argv,
  ];

  const run = (argv: readonly string[], o: NetnsRunOptions = {}): Promise<RunResult> =>
    runner.run('ip', nsArgv(argv, o), {
      timeoutMs: o.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
      ...(o.input === undefined ? {} : { input: o.input }),
    });

  const spawn = (argv: readonly string[], o: Omit<NetnsRunOptions, 'timeoutMs' | 'input'> = {}): LongRunning => {
    const child = runner.start('ip', nsArgv(argv, o));
    started.push(child);
    return child;
  };

  const inside = async (argv: readonly string[]): Promise<string> => {
    const r = await run(argv, { timeoutMs: TOOL_TIMEOUT_MS, env: process.env });
    if (r.exitCode !== 0 || r.timedOut) throw new Error(`inside ${name}: ${formatCommandLine(argv[0] ?? '', argv.slice(1))} exited ${String(r.exitCode)}: ${r.stderr.trim()}`);
    return r.stdout;
  };

  const pidsInside = async (): Promise<number[]> => {
    const r = await runner.run('ip', ['netns', 'pids', name], { timeoutMs: TOOL_TIMEOUT_MS });
    return r.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
  };

  const processLine = (pid: number): string | undefined => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      return cmd === '' ? undefined : cmd;
    } catch {
      return undefined; // It ended while we looked.
    }
  };

  const socketsUnder = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (d: string): void => {
      let entries: string[];
      try {
        entries = readdirSync(d);
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(d, e);
        try {
          const st = lstatSync(p);
          if (st.isDirectory()) walk(p);
          else if (st.isSocket()) out.push(p);
        } catch {
          // Removed while we looked.
        }
      }
    };
    walk(dir);
    return out.sort();
  };

  const iptablesLines = async (): Promise<string[]> => {
    const lines: string[] = [];
    for (const [save, backend] of [
      ['iptables-nft-save', 'nft4'],
      ['ip6tables-nft-save', 'nft6'],
      ['iptables-legacy-save', 'legacy4'],
      ['ip6tables-legacy-save', 'legacy6'],
    ] as const) {
      const r = await run([save], { timeoutMs: TOOL_TIMEOUT_MS, env: process.env });
      // A missing backend is no leftover; a failing one is worth seeing.
      if (r.exitCode === 0) lines.push(...normaliseIptablesSave(r.stdout, backend));
      else if (!/not found|No such file/i.test(r.stderr)) lines.push(`${backend} unreadable: ${r.stderr.trim()}`);
    }
    return lines;
  };

  const snapshot = async (): Promise<NetnsSnapshot> => {
    const dnsmasqPid = dnsmasq === undefined ? undefined : await dnsmasqPidOf();
    const pids = (await pidsInside()).filter((p) => p !== dnsmasqPid);
    const sockets = [...socketsUnder(runtimeDir), ...(unprivileged === undefined ? [] : socketsUnder(String(unprivileged.env['XDG_RUNTIME_DIR'])))];
    return {
      links: linkLines(await inside(['ip', '-d', '-j', 'link', 'show'])),
      routes: [
        ...routeLines(await inside(['ip', '-4', '-j', 'route', 'show', 'table', 'all']), 'inet'),
        ...routeLines(await inside(['ip', '-6', '-j', 'route', 'show', 'table', 'all']), 'inet6'),
      ],
      rules: [...(await inside(['ip', '-4', 'rule', 'show'])).trim().split('\n'), ...(await inside(['ip', '-6', 'rule', 'show'])).trim().split('\n')]
        .filter(Boolean)
        .sort(),
      iptables: await iptablesLines(),
      resolvConf: readFileSync(join(etcDir, 'resolv.conf'), 'utf8'),
      hostResolvConf: readFileSync('/etc/resolv.conf', 'utf8'),
      processes: pids.map((p) => `${p} ${processLine(p) ?? '(gone)'}`).sort(),
      sockets: existsSync(networkSocket) && !sockets.includes(networkSocket) ? [...sockets, networkSocket] : sockets,
    };
  };

  const dnsmasqPidOf = async (): Promise<number | undefined> => {
    // `ip netns exec` execs dnsmasq, so the pid inside is the one dnsmasq runs as.
    for (const pid of await pidsInside()) if (processLine(pid)?.startsWith('dnsmasq ')) return pid;
    return undefined;
  };

  const killInside = async (): Promise<void> => {
    for (const child of started) await child.stop();
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      for (const pid of await pidsInside()) {
        try {
          process.kill(pid, signal);
        } catch {
          // Already gone.
        }
      }
      try {
        await eventually(
          async () => {
            const left = await pidsInside();
            if (left.length > 0) throw new Error(`still running inside ${name}: ${left.join(' ')}`);
          },
          { timeoutMs: signal === 'SIGTERM' ? 5_000 : 10_000, intervalMs: 100, what: `processes in ${name} ending on ${signal}` },
        );
        return;
      } catch (err) {
        if (signal === 'SIGKILL') throw err;
      }
    }
  };

  const destroy = async (): Promise<void> => {
    const problems: string[] = [];
    const attempt = async (what: string, f: () => Promise<unknown>): Promise<void> => {
      try {
        await f();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const namespaces = async (): Promise<string[]> => (await tool('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
    if (relay !== undefined) await attempt('closing the loopback relay', () => relay!.close());
    if ((await namespaces()).includes(name)) {
      await attempt('stopping the processes inside', killInside);
      await attempt('ip netns del', () => tool('ip', ['netns', 'del', name]));
    }
    // The kernel removes the pair of a deleted namespace on its own, a moment later: a pair that
    // vanishes between the look and the delete is gone, as wanted (checked below).
    if ((await runner.run('ip', ['link', 'show', hostVeth], { timeoutMs: TOOL_TIMEOUT_MS })).exitCode === 0) {
      await runner.run('ip', ['link', 'del', hostVeth], { timeoutMs: TOOL_TIMEOUT_MS });
    }
    rmSync(etcDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    for (const d of extraDirs) rmSync(d, { recursive: true, force: true });

    if ((await namespaces()).includes(name)) problems.push(`namespace ${name} still exists`);
    // The kernel's own removal of the pair takes milliseconds.
    await eventually(
      async () => {
        if ((await runner.run('ip', ['link', 'show', hostVeth], { timeoutMs: TOOL_TIMEOUT_MS })).exitCode === 0) throw new Error(`veth ${hostVeth} still exists`);
      },
      { timeoutMs: 2_000, intervalMs: 50, what: `veth ${hostVeth} gone` },
    ).catch((err: unknown) => problems.push(err instanceof Error ? err.message : String(err)));
    if (existsSync(etcDir)) problems.push(`${etcDir} still exists`);
    if (existsSync(work)) problems.push(`${work} still exists`);
    if (problems.length > 0) throw new Error(`destroying ${name} left something behind:\n  ${problems.join('\n  ')}`);
  };

  try {
    const subnet = allocateVethSubnet(
      usedCidrs(await tool('ip', ['-4', '-j', 'addr', 'show']), await tool('ip', ['-4', '-j', 'route', 'show', 'table', 'all'])),
    );
    const prefix = subnet.cidr.split('/')[1] ?? '30';
    await tool('ip', ['netns', 'add', name]);
    await tool('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await tool('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth, 'netns', name]);
    // No IPv6 link-local addresses: their routes would appear only once duplicate address
    // detection ends, after the baseline snapshot, and read as leftovers.
    await tool('ip', ['link', 'set', 'dev', hostVeth, 'addrgenmode', 'none']);
    await tool('ip', ['-n', name, 'link', 'set', 'dev', nsVeth, 'addrgenmode', 'none']);
    await tool('ip', ['addr', 'add', `${subnet.hostAddress}/${prefix}`, 'dev', hostVeth]);
    await tool('ip', ['link', 'set', hostVeth, 'up']);
    await tool('ip', ['-n', name, 'addr', 'add', `${subnet.nsAddress}/${prefix}`, 'dev', nsVeth]);
    await tool('ip', ['-n', name, 'link', 'set', nsVeth, 'up']);
    if (loopbackApi) {
      // An API server on loopback only (kind on a laptop): the namespace's own 127.0.0.1:<port>
      // is relayed to this machine's, and that port is the one way out.
      relay = await relayLoopbackPort(apiServerPort, work, (argv) => spawn(argv, { env: process.env }));
    } else {
      // The one way out: a host route to the API server. The root namespace answers from its own
      // address there (the node address is local to it), so no forwarding or NAT is involved.
      await tool('ip', ['-n', name, 'route', 'add', `${apiServer}/32`, 'via', subnet.hostAddress, 'dev', nsVeth]);
    }

    mkdirSync(etcDir, { recursive: true });
    writeFileSync(join(etcDir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
    const hosts = { [OUTSIDE_NAME]: OUTSIDE_ADDRESS, ...(options.hosts ?? {}) };
    // --host-record answers A with the address and AAAA with "no data", as a real zone would
    // (--address would answer AAAA with NXDOMAIN here, which makes glibc drop the A answer too);
    // --local=/#/ makes every other name NXDOMAIN at once instead of "no upstream" (REFUSED).
    dnsmasq = spawn(
      [
        'dnsmasq',
        '--no-daemon',
        '--no-resolv',
        '--no-hosts',
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--pid-file=',
        '--local=/#/',
        '--log-queries',
        `--log-facility=${dnsLogPath}`,
        ...Object.entries(hosts).map(([host, ip]) => `--host-record=${host},${ip}`),
      ],
      { env: process.env },
    );
    await eventually(
      async () => {
        const r = await run(['getent', 'hosts', OUTSIDE_NAME], { timeoutMs: 5_000, env: process.env });
        if (!r.stdout.includes(OUTSIDE_ADDRESS)) throw new Error(`getent hosts ${OUTSIDE_NAME}: ${r.stdout}${r.stderr} (dnsmasq: ${dnsmasq?.output() ?? ''})`);
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `dnsmasq answering inside ${name}` },
    );

    const baseline = await snapshot();
    const netns: WorkstationNetns = {
      name,
      subnet,
      hostVeth,
      nsVeth,
      apiServer,
      env,
      runtimeDir,
      cacheDir,
      networkSocket,
      daemonLog: () => readIfExists(join(cacheDir, 'telepresence-ts', 'daemon.log')),
      dnsLog: () => readIfExists(dnsLogPath),
      run,
      spawn,
      async unprivileged(uid = 65534, gid = 65534) {
        if (unprivileged !== undefined) return unprivileged;
        const home = mkdtempSync(join(tmpdir(), `${name}-u${uid}-`));
        extraDirs.push(home);
        const dirs = { run: join(home, 'run'), cache: join(home, 'cache') };
        mkdirSync(dirs.run, { mode: 0o700 });
        mkdirSync(dirs.cache);
        // The harness's kubeconfig names root-only certificate files: give the user one with them inlined.
        const flat = join(home, 'kubeconfig');
        const view = ['config', 'view', '--raw', '--flatten', '--minify'];
        writeFileSync(flat, await tool('kubectl', ['--kubeconfig', options.kubeconfig, ...view]), { mode: 0o600 });
        for (const p of [home, dirs.run, dirs.cache, flat]) chownSync(p, uid, gid);
        unprivileged = {
          uid,
          gid,
          env: {
            PATH: String(env['PATH']),
            HOME: home,
            KUBECONFIG: flat,
            XDG_RUNTIME_DIR: dirs.run,
            XDG_CACHE_HOME: dirs.cache,
            TELEPRESENCE_NETWORK_SOCKET: join(dirs.run, 'network.sock'),
          },
        };
        return unprivileged;
      },
      async leftovers(ignore = []) {
        return snapshotDiff(baseline, await snapshot(), ignore);
      },
      destroy,
    };
    return netns;
  } catch (err) {
    try {
      await destroy();
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], `building ${name} failed, and so did taking it away again`, { cause: cleanupErr });
    }
    throw err;
  }
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
