/**
 * The outbound-access benchmark: prints figures, asserts nothing. Run it with
 * `bash test/bench/outbound.sh`, as root, on a cluster brought up by `npm run cluster:up`.
 *
 * The harness's node is this machine, whose own network namespace already reaches pods and
 * Services. So the workstation is a network namespace of its own that reaches only the API server
 * (test/src/workstation-netns.ts), and every figure below is taken from inside it: the CLI, its
 * daemons, the clients and `kubectl port-forward` all run there. The CLI runs as an unprivileged
 * user (the packet engine will not run as root); root starts the network daemon for that user,
 * as the CLI's needs-root hint says to.
 *
 * One bundle, three roles (the first argument):
 *   (none)        sets up (images, the sink workload, the traffic-manager, the namespace), runs
 *                 the measuring role inside the namespace, and takes everything away again
 *   inside        measures; prints the table
 *   floor-relay   a loopback relay that sends each connection over a bare Manager.Outbound
 *                 stream through the daemon's kind of port-forward to the traffic-manager: the
 *                 outbound path without the TUN device, the packet engine, its Unix socket and
 *                 the user daemon, as a floor for what those cost
 *
 * What is compared with what (each pair measured in the same run, alternating where it can be):
 *   round trip       tiny GET to the sink Service's ClusterIP through outbound access, against
 *                    the same GET over `kubectl port-forward svc/...` started in the namespace;
 *                    on a fresh connection per request, and on one keep-alive connection
 *   throughput       a large GET (cluster -> workstation) and POST (workstation -> cluster),
 *                    each by a client process of its own, the same two ways
 *   connection rate  connections/s, each a GET with `Connection: close`, sequential and 8 at once
 *   DNS              dns.lookup (glibc's getaddrinfo, no cache in Node) of cluster names through
 *                    the daemon's resolver, against CoreDNS asked from the sink's pod, for a
 *                    known name and for a new name each time (which no cache has seen); of names
 *                    the namespace's dnsmasq answers, after connect against before it
 *   connect          `kubectl telepresence connect` with nothing running (root's network-daemon
 *                    start timed on its own), with the network daemon running, and with both
 *                    daemons running; each followed by the first HTTP answer by name
 *   memory, CPU      VmRSS of the user daemon, the network daemon and the packet engine, idle
 *                    and after the transfers; CPU seconds per GB moved, process by process
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { TUNNEL_CHANNEL_OPTIONS, createKubeApi, findManagerPod } from '@telepresence-ts/core';
import type { ManagerClient, SessionInfo, TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { TunnelManagerClient } from '@telepresence-ts/proto/manager/v1/tunnel';
import { findRepoRoot, prepareImage } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createTelepresenceCli } from '../src/telepresence-cli.js';
import { createWorkstationNetns, OUTSIDE_NAME, OUTSIDE_ADDRESS } from '../src/workstation-netns.js';

const execFileAsync = promisify(execFile);

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${raw}"`);
  return n;
}

const KNOBS = {
  connectRuns: intFromEnv('TP_BENCH_CONNECT_RUNS', 5),
  requests: intFromEnv('TP_BENCH_REQUESTS', 1000),
  connections: intFromEnv('TP_BENCH_CONNS', 600),
  lookups: intFromEnv('TP_BENCH_DNS_LOOKUPS', 500),
  bulkBytes: intFromEnv('TP_BENCH_BULK_MB', 256) * 1024 * 1024,
  bulkRuns: intFromEnv('TP_BENCH_BULK_RUNS', 3),
};
const MANAGER_NS = 'tp-system';
const SINK = 'sink';
const SINK_PORT = 8080;
/** A name only the namespace's dnsmasq knows, under a suffix the daemon never asks the cluster about. */
const EXCLUDED_NAME = 'bench.example.com';
const EXCLUDED_ADDRESS = '192.0.2.11';
/** How many connections the concurrent connection-rate figure keeps open at once. */
const CONCURRENCY = 8;
/** Alternating rounds per compared figure, so that the machine's drift weighs on each path alike. */
const ROUNDS = 10;
const CPU_TICKS_PER_S = 100;

// ---------------------------------------------------------------------------------------------
// The sink in the pod: GET /download?bytes=N streams N bytes, POST /upload answers the length it
// read, anything else answers "sink". The marker comment lets the CPU figures find the process.

const SINK_SCRIPT = `// outbound-bench-sink
const block = Buffer.alloc(1 << 16, 97);
const server = require('node:http').createServer((req, res) => {
  const u = new URL(req.url, 'http://sink');
  if (u.pathname === '/upload') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    return void req.on('end', () => res.end(String(n)));
  }
  if (u.pathname === '/download') {
    let left = Number(u.searchParams.get('bytes'));
    res.writeHead(200, { 'content-length': String(left) });
    const more = () => {
      while (left > 0) {
        const k = Math.min(left, block.length);
        left -= k;
        if (!res.write(k === block.length ? block : block.subarray(0, k))) return void res.once('drain', more);
      }
      res.end();
    };
    return more();
  }
  res.end('sink');
});
// Rounds alternate between paths: a path's connection may sit idle for a few seconds.
server.keepAliveTimeout = 60000;
server.listen(${SINK_PORT});`;

/** One bulk transfer by a process of its own; prints the milliseconds it took and its own CPU ms. */
const BULK_CLIENT = `
const [url, n, mode] = process.argv.slice(1);
const size = Number(n);
const t0 = performance.now();
const get = mode === 'download';
const req = require('node:http').request(url, { method: get ? 'GET' : 'POST', agent: false, headers: get ? {} : { 'content-length': n } }, (res) => {
  let got = 0;
  let body = '';
  res.on('data', (c) => { got += c.length; if (!get) body += c; });
  res.on('end', () => {
    const moved = get ? got : Number(body);
    if (moved !== size) { console.error('moved ' + moved + ' of ' + size + ' bytes'); process.exit(1); }
    const cpu = process.cpuUsage();
    console.log(performance.now() - t0, (cpu.user + cpu.system) / 1000);
  });
});
req.setTimeout(120000, () => req.destroy(new Error('stalled for 120 s')));
req.on('error', (e) => { console.error(e.message); process.exit(1); });
if (get) req.end();
else {
  const block = Buffer.alloc(1 << 16, 98);
  let left = size;
  const more = () => {
    while (left > 0) {
      const k = Math.min(left, block.length);
      left -= k;
      if (!req.write(k === block.length ? block : block.subarray(0, k))) return void req.once('drain', more);
    }
    req.end();
  };
  more();
}`;

/**
 * Sequential dns.lookup()s of a name; prints their milliseconds as JSON. The same code runs in the
 * pod. A name with `{i}` in it is a new name each time (`{i}` becomes a fresh number), which no
 * cache on the way can have seen; `want` is the address expected, or NXDOMAIN.
 */
const LOOKUP_SCRIPT = `
const dns = require('node:dns').promises;
const [name, n, want] = process.argv.slice(1);
const run = Date.now().toString(36);
let count = 0;
(async () => {
  const one = async () => {
    const asked = name.replace('{i}', 'b' + run + '-' + count++);
    const t = performance.now();
    const r = await dns.lookup(asked, { family: 4 }).catch((e) => ({ address: e.code === 'ENOTFOUND' ? 'NXDOMAIN' : e.code }));
    const took = performance.now() - t;
    if (r.address !== want) throw new Error(asked + ' is ' + r.address + ', not ' + want);
    return took;
  };
  for (let i = 0; i < 20; i++) await one();
  const out = [];
  for (let i = 0; i < Number(n); i++) out.push(await one());
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e.message); process.exit(1); });`;

// ---------------------------------------------------------------------------------------------
// Figures

interface Row {
  readonly figure: string;
  readonly outbound: string;
  readonly baseline: string;
  readonly ratio: string;
  readonly target: string;
}
const rows: Row[] = [];
/** Long figures (memory, CPU by process), printed below the table. */
const details: Array<readonly [string, string]> = [];

function detail(figure: string, value: string): void {
  details.push([figure, value]);
  process.stderr.write(`  ${figure}: ${value}\n`);
}

function row(figure: string, outbound: string, baseline = '', ratio = '', target = ''): void {
  rows.push({ figure, outbound, baseline, ratio, target });
  process.stderr.write(`  ${figure}: ${outbound}${baseline !== '' ? ` | ${baseline}` : ''}${ratio !== '' ? ` | ${ratio}` : ''}${target !== '' ? ` (${target})` : ''}\n`);
}

/** A ratio and its verdict against `limit` ("<=" or ">="). */
function judged(ratio: number, op: '<=' | '>=', limit: number): { ratio: string; target: string } {
  const met = op === '<=' ? ratio <= limit : ratio >= limit;
  return { ratio: ratio.toFixed(2), target: `${op} ${limit}: ${met ? 'met' : 'MISSED'}` };
}

function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}
const median = (xs: readonly number[]): number => percentile(xs, 50);
const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const secs = (x: number): string => `${(x / 1000).toFixed(2)} s`;
const p50p99 = (xs: readonly number[]): string => `${ms(percentile(xs, 50))} / ${ms(percentile(xs, 99))}`;

function progress(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

const sleep = (msec: number): Promise<void> => new Promise((ok) => setTimeout(ok, msec));

// ---------------------------------------------------------------------------------------------
// Processes: ours are those in this network namespace, found by their command lines.

type Role = 'user daemon' | 'network daemon' | 'packet engine';
const ROLES: readonly Role[] = ['user daemon', 'network daemon', 'packet engine'];

interface ProcInfo {
  readonly pid: number;
  readonly comm: string;
  readonly args: string;
  readonly netns: string;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      out.push({
        pid,
        comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(),
        args: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '),
        netns: readlinkSync(`/proc/${pid}/ns/net`),
      });
    } catch {
      // It ended while we looked (or is a kernel thread without a namespace link).
    }
  }
  return out;
}

const OWN_NETNS = (): string => readlinkSync('/proc/self/ns/net');

function roleOf(p: ProcInfo): Role | undefined {
  if (p.comm === 'tp-netstack') return 'packet engine';
  if (p.args.includes(' daemon-foreground')) return 'user daemon';
  if (p.args.includes(' network-daemon') && p.args.includes('--foreground')) return 'network daemon';
  return undefined;
}

/** The workstation's own processes by role, in this namespace. */
function ourDaemons(): Map<Role, number[]> {
  const mine = OWN_NETNS();
  const out = new Map<Role, number[]>();
  for (const p of processes()) {
    if (p.netns !== mine) continue;
    const role = roleOf(p);
    if (role !== undefined) out.set(role, [...(out.get(role) ?? []), p.pid]);
  }
  return out;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN) / 1024;
}

function memoryLine(): string {
  const daemons = ourDaemons();
  return ROLES.map((role) => {
    const pids = daemons.get(role) ?? [];
    if (pids.length === 0) return `${role} -`;
    return `${role} ${pids.map((pid) => rssMb(pid).toFixed(1)).join('+')} MB`;
  }).join(', ');
}

/** Which processes the CPU figures watch: the workstation's and the cluster's side of each path. */
function cpuName(p: ProcInfo, mine: string): string | undefined {
  if (p.netns === mine) {
    const role = roleOf(p);
    if (role !== undefined) return role;
    if (p.comm.startsWith('kubectl') && p.args.includes('port-forward')) return 'kubectl port-forward';
    if (p.args.includes(' floor-relay')) return 'floor relay';
    return undefined;
  }
  if (p.comm === 'kube-apiserver' || p.comm === 'kubelet' || p.comm === 'containerd') return p.comm;
  if (p.args.includes('/app/manager.js')) return 'traffic-manager';
  if (p.args.includes('outbound-bench-sink')) return 'sink in the pod';
  return undefined;
}

function cpuTicks(): Map<string, number> {
  const mine = OWN_NETNS();
  const out = new Map<string, number>();
  for (const p of processes()) {
    const name = cpuName(p, mine);
    if (name === undefined) continue;
    try {
      // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // Ended meanwhile.
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTTP and TCP clients

function get(url: string, agent: Agent | false, timeoutMs: number): Promise<string> {
  return new Promise((ok, fail) => {
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? ok(body) : fail(new Error(`GET ${url}: ${String(res.statusCode)}`))));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', fail);
    req.end();
  });
}

interface Path {
  readonly label: string;
  readonly host: string;
  readonly port: number;
}
const urlOf = (p: Path, path: string): string => `http://${p.host}:${p.port}${path}`;

/**
 * Round trips of GET /ping, `count` per path in ROUNDS alternating rounds after 50 warm-up
 * requests each; on one keep-alive connection per path, or a new connection per request.
 */
async function roundTrips(paths: readonly Path[], count: number, keepAlive: boolean): Promise<number[][]> {
  const agents = paths.map(() => (keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : false));
  try {
    const once = async (i: number): Promise<number> => {
      const t0 = performance.now();
      const body = await get(urlOf(paths[i] as Path, '/ping'), agents[i] ?? false, 5_000);
      const took = performance.now() - t0;
      if (body !== 'sink') throw new Error(`${(paths[i] as Path).label}: /ping answered ${JSON.stringify(body)}`);
      return took;
    };
    for (let p = 0; p < paths.length; p++) for (let i = 0; i < 50; i++) await once(p);
    const out = paths.map((): number[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      const share = Math.floor(count / ROUNDS) + (round < count % ROUNDS ? 1 : 0);
      for (let p = 0; p < paths.length; p++) for (let i = 0; i < share; i++) out[p]?.push(await once(p));
    }
    return out;
  } finally {
    for (const a of agents) if (a !== false) a.destroy();
  }
}

const CLOSE_REQUEST = Buffer.from('GET /ping HTTP/1.1\r\nHost: sink\r\nConnection: close\r\n\r\n');

/**
 * One connection: connect, GET with `Connection: close`, read the whole answer (its length is
 * known from the header), close. The client closes as soon as it has the answer, as HTTP clients
 * do: `kubectl port-forward` passes the server's close on only when the client closes too.
 */
function oneConnection(p: Path): Promise<void> {
  return new Promise((ok, fail) => {
    const socket: Socket = netConnect({ host: p.host, port: p.port });
    let answer = '';
    let done = false;
    socket.setTimeout(5_000, () => socket.destroy(new Error(`${p.label}: no answer within 5 s`)));
    socket.on('connect', () => socket.write(CLOSE_REQUEST));
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      answer += c;
      const head = answer.indexOf('\r\n\r\n');
      const length = /content-length: *(\d+)/i.exec(answer)?.[1];
      if (head < 0 || length === undefined || answer.length < head + 4 + Number(length)) return;
      done = true;
      if (!answer.startsWith('HTTP/1.1 200') || !answer.endsWith('sink')) fail(new Error(`${p.label}: answered ${JSON.stringify(answer.slice(0, 80))}`));
      else ok();
      socket.end();
    });
    socket.on('error', (err) => {
      if (!done) fail(err);
    });
    socket.on('close', () => {
      if (!done) fail(new Error(`${p.label}: closed after ${JSON.stringify(answer.slice(0, 80))}`));
    });
  });
}

/** `n` connections, `concurrency` at a time; the milliseconds all of them took. */
async function connections(p: Path, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await oneConnection(p);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return performance.now() - t0;
}

/** Connections per second per path, in alternating rounds: sequential and CONCURRENCY at once. */
async function connectionRates(paths: readonly Path[], n: number): Promise<Array<{ sequential: number; concurrent: number }>> {
  const rounds = 3;
  const totals = paths.map(() => ({ seqMs: 0, seqN: 0, concMs: 0, concN: 0 }));
  for (const p of paths) await connections(p, 20, 1);
  for (let round = 0; round < rounds; round++) {
    const share = Math.floor(n / rounds) + (round < n % rounds ? 1 : 0);
    for (let i = 0; i < paths.length; i++) {
      const t = totals[i] as (typeof totals)[number];
      t.seqMs += await connections(paths[i] as Path, share, 1);
      t.seqN += share;
      t.concMs += await connections(paths[i] as Path, share, CONCURRENCY);
      t.concN += share;
      progress(`  round ${round + 1}, ${(paths[i] as Path).label}: ${(t.seqN / (t.seqMs / 1000)).toFixed(0)} / ${(t.concN / (t.concMs / 1000)).toFixed(0)} per s so far`);
    }
  }
  return totals.map((t) => ({ sequential: t.seqN / (t.seqMs / 1000), concurrent: t.concN / (t.concMs / 1000) }));
}

interface Transfer {
  /** Best MB/s of the runs. */
  readonly mbps: number;
  /** CPU seconds per GB moved, by process, the client included. */
  readonly cpuPerGb: ReadonlyArray<readonly [string, number]>;
}

/** KNOBS.bulkRuns transfers of KNOBS.bulkBytes, each by a client process of its own. */
async function transfer(script: string, p: Path, download: boolean): Promise<Transfer> {
  const n = KNOBS.bulkBytes;
  const before = cpuTicks();
  let best = 0;
  let clientMs = 0;
  for (let i = 0; i < KNOBS.bulkRuns; i++) {
    const url = download ? urlOf(p, `/download?bytes=${n}`) : urlOf(p, '/upload');
    const { stdout } = await execFileAsync(process.execPath, ['-e', script, url, String(n), download ? 'download' : 'upload'], { timeout: 600_000 }).catch((err: unknown) => {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${download ? 'GET' : 'POST'} of ${n} bytes via ${p.label} failed: ${(e.stderr ?? '').trim() || e.message.split('\n')[0]}`, { cause: err });
    });
    const [took = NaN, cpu = 0] = stdout.trim().split(' ').map(Number);
    if (!Number.isFinite(took) || took <= 0) throw new Error(`the bulk client for ${url} printed ${JSON.stringify(stdout)}`);
    clientMs += cpu;
    best = Math.max(best, n / 1024 / 1024 / (took / 1000));
  }
  const after = cpuTicks();
  const gb = (KNOBS.bulkRuns * n) / 1024 ** 3;
  const cpuPerGb = [...after]
    .map(([name, ticks]) => [name, (ticks - (before.get(name) ?? 0)) / CPU_TICKS_PER_S / gb] as const)
    .concat([['bulk client', clientMs / 1000 / gb] as const])
    // Below 0.05 s per GB is a bystander's idle ticks, not the transfer's.
    .filter(([, perGb]) => perGb >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  return { mbps: best, cpuPerGb };
}

const cpuText = (t: Transfer): string => {
  const total = t.cpuPerGb.reduce((sum, [, v]) => sum + v, 0);
  return `${t.cpuPerGb.map(([name, v]) => `${name} ${v.toFixed(2)}`).join(', ')}; total ${total.toFixed(1)}`;
};

// ---------------------------------------------------------------------------------------------
// The CLI inside the namespace

/**
 * The workstation's user: not root, as a developer is not (the packet engine refuses to run as
 * root). The outer role makes it (WorkstationNetns.unprivileged) and passes it on as JSON.
 */
interface WorkstationUser {
  readonly uid: number;
  readonly gid: number;
  readonly env: NodeJS.ProcessEnv;
}

function workstationUser(): WorkstationUser {
  const raw = process.env['TP_OBENCH_USER'];
  if (raw === undefined || raw === '') throw new Error("TP_OBENCH_USER is not set (the benchmark's outer role sets it)");
  return JSON.parse(raw) as WorkstationUser;
}

/** argv run as the workstation's user. */
const asUser = (user: WorkstationUser, argv: readonly string[]): string[] => ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...argv];

async function run(argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await execFileAsync(argv[0] ?? '', argv.slice(1), { env, timeout: timeoutMs });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
  }
}

/** `kubectl telepresence <args>` as the workstation's user. */
const tp = (user: WorkstationUser, args: readonly string[], timeoutMs = 120_000): Promise<string> => run(asUser(user, ['kubectl', 'telepresence', ...args]), user.env, timeoutMs);

/**
 * `sudo kubectl telepresence network-daemon ...` for that user: root's environment, with the
 * user's network socket (what the CLI's needs-root hint says to run).
 */
const asRootNetwork = (user: WorkstationUser, args: readonly string[]): Promise<string> =>
  run(['kubectl', 'telepresence', 'network-daemon', ...args], { ...process.env, TELEPRESENCE_NETWORK_SOCKET: user.env['TELEPRESENCE_NETWORK_SOCKET'] }, 30_000);

interface StatusJson {
  daemon: { running: boolean };
  connection?: { connected: boolean; outbound?: { state: string; device: string; routed: string[]; dnsDomains: string[]; tcpFlows: number; dnsClusterQueries: number; dnsUpstreamQueries: number; error?: string } };
}

const status = async (user: WorkstationUser): Promise<StatusJson> => JSON.parse(await tp(user, ['status', '--output', 'json'])) as StatusJson;

/** Polls until `check` holds, at most `timeoutMs`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

const running = (role: Role): boolean => (ourDaemons().get(role) ?? []).length > 0;

/** The user's `quit`; with `network`, root's network daemon is stopped too. */
async function stopDaemons(user: WorkstationUser, network: boolean): Promise<void> {
  await tp(user, ['quit'], 30_000);
  await until('the user daemon gone after quit', () => !running('user daemon'));
  await until('the packet engine gone after quit', () => !running('packet engine'));
  if (network && running('network daemon')) await asRootNetwork(user, ['--stop']);
  if (network) await until('the network daemon gone', () => !running('network daemon'));
}

/** Root's `network-daemon --owner <user>` (returns once it listens); its wall time in ms. */
async function startNetworkDaemon(user: WorkstationUser): Promise<number> {
  const t0 = performance.now();
  await asRootNetwork(user, ['--owner', String(user.uid)]);
  const took = performance.now() - t0;
  await until('the network daemon running', () => running('network daemon'));
  return took;
}

/** The user daemon alone, not connected: the hidden verb the CLI starts detached (core/src/daemon/launcher.ts). */
async function startUserDaemon(user: WorkstationUser): Promise<void> {
  const argv = asUser(user, ['kubectl-telepresence', 'daemon-foreground']);
  const daemon = spawn(argv[0] ?? '', argv.slice(1), { env: user.env, detached: true, stdio: 'ignore' });
  daemon.unref();
  await until('the user daemon answering', async () => (await status(user)).daemon.running);
}

/** Connect, then GETs on fresh connections by name until one is answered; both in ms. */
async function timedConnect(user: WorkstationUser, ns: string): Promise<{ connect: number; firstAnswer: number }> {
  const t0 = performance.now();
  await tp(user, ['connect', '--namespace', ns], 120_000);
  const t1 = performance.now();
  const url = `http://${SINK}.${ns}/ping`;
  let last = '';
  for (;;) {
    try {
      if ((await get(url, false, 1_000)) === 'sink') break;
    } catch (err) {
      last = (err as Error).message;
    }
    if (performance.now() - t1 > 30_000) throw new Error(`${url} unanswered 30 s after connect returned (last: ${last}); status: ${JSON.stringify(await status(user))}`);
    await sleep(2);
  }
  return { connect: t1 - t0, firstAnswer: performance.now() - t1 };
}

function runScript(script: string, args: readonly string[], timeoutMs = 300_000): Promise<string> {
  return execFileAsync(process.execPath, ['-e', script, ...args], { timeout: timeoutMs }).then((r) => r.stdout);
}

/** A long-running child; resolves with the first match of `pattern` in its output. */
function startChild(command: string, args: readonly string[], pattern: RegExp, timeoutMs: number): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill();
      fail(new Error(`${command} ${args.join(' ')} did not print ${String(pattern)} within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (c: Buffer): void => {
      output += c.toString();
      const m = pattern.exec(output);
      if (m !== null) {
        clearTimeout(timer);
        ok({ child, match: m });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${command} ${args.join(' ')} exited ${String(code)}:\n${output}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// inside: every measurement, from the workstation's namespace

async function inside(): Promise<void> {
  const need = (name: string): string => {
    const v = process.env[name];
    if (v === undefined || v === '') throw new Error(`${name} is not set (the benchmark's outer role sets it)`);
    return v;
  };
  const ns = need('TP_OBENCH_NS');
  const serviceIp = need('TP_OBENCH_SERVICE_IP');
  const pod = need('TP_OBENCH_POD');
  const self = need('TP_OBENCH_SCRIPT');
  const user = workstationUser();
  const fqdn = `${SINK}.${ns}.svc.cluster.local`;
  const children: ChildProcess[] = [];
  const lookups = async (name: string, want: string): Promise<number[]> => JSON.parse(await runScript(LOOKUP_SCRIPT, [name, String(KNOBS.lookups), want])) as number[];

  /** The traffic-manager's pod names: another client that restarts it mid-run spoils the figures. */
  const managerPods = async (): Promise<string> => {
    const { stdout } = await execFileAsync('kubectl', ['-n', process.env['TP_OBENCH_MANAGER_NS'] ?? MANAGER_NS, 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.name}'], { timeout: 30_000 });
    return stdout.trim();
  };
  const managerPodsBefore = await managerPods();

  try {
    // DNS before connect: the namespace's dnsmasq, straight.
    progress(`DNS before connect: ${KNOBS.lookups} lookups of ${OUTSIDE_NAME} and ${EXCLUDED_NAME}`);
    const outsideBefore = await lookups(OUTSIDE_NAME, OUTSIDE_ADDRESS);
    const excludedBefore = await lookups(EXCLUDED_NAME, EXCLUDED_ADDRESS);
    // The cluster's DNS as a pod asks it (absolute name: no search path).
    progress(`DNS from the sink's pod: ${KNOBS.lookups} lookups of ${fqdn}.`);
    const { stdout: podOut } = await execFileAsync('kubectl', ['-n', ns, 'exec', pod, '--', 'node', '-e', LOOKUP_SCRIPT, `${fqdn}.`, String(KNOBS.lookups), serviceIp], { timeout: 300_000 });
    const fromPod = JSON.parse(podOut.trim().split('\n').pop() ?? '[]') as number[];
    const newName = `{i}.${ns}.svc.cluster.local`;
    const { stdout: podFreshOut } = await execFileAsync('kubectl', ['-n', ns, 'exec', pod, '--', 'node', '-e', LOOKUP_SCRIPT, `${newName}.`, String(KNOBS.lookups), 'NXDOMAIN'], { timeout: 300_000 });
    const freshFromPod = JSON.parse(podFreshOut.trim().split('\n').pop() ?? '[]') as number[];

    // connect in three states, in turn: nothing running (root starts the network daemon first, as
    // the CLI's hint says to), the network daemon running, and both daemons running.
    progress(`connect x${KNOBS.connectRuns} in each of three states`);
    type Timed = { connect: number; firstAnswer: number; networkDaemon?: number };
    const connects: Record<'nothing' | 'network' | 'both', Timed[]> = { nothing: [], network: [], both: [] };
    for (let i = 0; i < KNOBS.connectRuns; i++) {
      await stopDaemons(user, true);
      const networkDaemon = await startNetworkDaemon(user);
      connects.nothing.push({ ...(await timedConnect(user, ns)), networkDaemon });
      await stopDaemons(user, false);
      if (!running('network daemon')) await startNetworkDaemon(user);
      connects.network.push(await timedConnect(user, ns));
      await stopDaemons(user, false);
      if (!running('network daemon')) await startNetworkDaemon(user);
      await startUserDaemon(user);
      connects.both.push(await timedConnect(user, ns));
    }
    const st = await status(user);
    const outbound = st.connection?.outbound;
    if (outbound?.state !== 'up') throw new Error(`outbound access is not up after connect: ${JSON.stringify(st)}`);
    progress(`outbound: ${outbound.device}, routed ${outbound.routed.join(' ')}, DNS ${outbound.dnsDomains.join(' ')}`);

    await sleep(3_000);
    const idleMemory = memoryLine();

    // DNS through the daemon's resolver.
    progress(`DNS after connect: ${KNOBS.lookups} lookups each of 4 names, and of as many new names`);
    const dnsBefore = await status(user);
    const fqdnAfter = await lookups(fqdn, serviceIp);
    const shortAfter = await lookups(`${SINK}.${ns}`, serviceIp);
    const outsideAfter = await lookups(OUTSIDE_NAME, OUTSIDE_ADDRESS);
    const excludedAfter = await lookups(EXCLUDED_NAME, EXCLUDED_ADDRESS);
    const freshAfter = await lookups(newName, 'NXDOMAIN');
    const dnsAfter = await status(user);

    // The paths.
    const viaOutbound: Path = { label: 'outbound', host: serviceIp, port: 80 };
    const pf = await startChild('kubectl', ['-n', ns, 'port-forward', `svc/${SINK}`, ':80'], /Forwarding from 127\.0\.0\.1:(\d+)/, 30_000);
    children.push(pf.child);
    const viaForward: Path = { label: 'port-forward', host: '127.0.0.1', port: Number(pf.match[1]) };
    let viaFloor: Path | undefined;
    let floorProblem = '';
    try {
      const relay = await startChild(process.execPath, [self, 'floor-relay'], /floor relay listening on (\d+)/, 60_000);
      children.push(relay.child);
      viaFloor = { label: 'bare gRPC stream', host: '127.0.0.1', port: Number(relay.match[1]) };
      await get(urlOf(viaFloor, '/ping'), false, 5_000);
    } catch (err) {
      floorProblem = (err as Error).message.split('\n').slice(0, 3).join(' ');
      viaFloor = undefined;
      progress(`the floor relay is not available: ${floorProblem}`);
    }
    const paths = [viaOutbound, viaForward, ...(viaFloor !== undefined ? [viaFloor] : [])];

    progress(`round trips x${KNOBS.requests} per path, new connection per request`);
    const fresh = await roundTrips(paths, KNOBS.requests, false);
    progress(`round trips x${KNOBS.requests} per path, keep-alive`);
    const kept = await roundTrips(paths, KNOBS.requests, true);
    progress(`connection rate, ${KNOBS.connections} connections per path, sequential and ${CONCURRENCY} at once`);
    const rates = await connectionRates(paths, KNOBS.connections);

    const mb = KNOBS.bulkBytes / 1024 / 1024;
    progress(`throughput, ${mb} MB, best of ${KNOBS.bulkRuns}, both directions`);
    const downOut = await transfer(BULK_CLIENT, viaOutbound, true);
    const upOut = await transfer(BULK_CLIENT, viaOutbound, false);
    const afterBulkMemory = memoryLine();
    const downPf = await transfer(BULK_CLIENT, viaForward, true);
    const upPf = await transfer(BULK_CLIENT, viaForward, false);
    // The floor is a comparison, not the product: when it breaks (another client restarting the
    // traffic-manager ends its port-forward), the run goes on without it.
    let downFloor: Transfer | undefined;
    let upFloor: Transfer | undefined;
    if (viaFloor !== undefined) {
      try {
        downFloor = await transfer(BULK_CLIENT, viaFloor, true);
        upFloor = await transfer(BULK_CLIENT, viaFloor, false);
      } catch (err) {
        floorProblem = (err as Error).message;
        progress(`the floor's transfers failed: ${floorProblem}`);
      }
    }
    const managerPodsAfter = await managerPods();
    const flows = await status(user);

    // The table.
    const [fOut = [], fPf = [], fFloor] = fresh;
    const [kOut = [], kPf = [], kFloor] = kept;
    const [rOut, rPf, rFloor] = rates;
    const vs = (a: number[], b: number[], p: number): number => percentile(a, p) / percentile(b, p);
    row('round trip, new connection per request, p50 / p99', p50p99(fOut), p50p99(fPf), `${judged(vs(fOut, fPf, 50), '<=', 1.2).ratio} / ${vs(fOut, fPf, 99).toFixed(2)}`, judged(vs(fOut, fPf, 50), '<=', 1.2).target);
    row('round trip, keep-alive, p50 / p99', p50p99(kOut), p50p99(kPf), `${vs(kOut, kPf, 50).toFixed(2)} / ${vs(kOut, kPf, 99).toFixed(2)}`, judged(vs(kOut, kPf, 50), '<=', 1.2).target);
    const down = downOut.mbps / downPf.mbps;
    const up = upOut.mbps / upPf.mbps;
    row(`throughput cluster -> workstation (GET ${mb} MB)`, `${downOut.mbps.toFixed(1)} MB/s`, `${downPf.mbps.toFixed(1)} MB/s`, down.toFixed(2), judged(down, '>=', 0.8).target);
    row(`throughput workstation -> cluster (POST ${mb} MB)`, `${upOut.mbps.toFixed(1)} MB/s`, `${upPf.mbps.toFixed(1)} MB/s`, up.toFixed(2), judged(up, '>=', 0.8).target);
    if (rOut !== undefined && rPf !== undefined) {
      row('new connections/s, sequential', rOut.sequential.toFixed(0), rPf.sequential.toFixed(0), (rOut.sequential / rPf.sequential).toFixed(2));
      row(`new connections/s, ${CONCURRENCY} at once`, rOut.concurrent.toFixed(0), rPf.concurrent.toFixed(0), (rOut.concurrent / rPf.concurrent).toFixed(2));
    }
    row(`DNS ${fqdn}, p50 / p99`, p50p99(fqdnAfter), `${p50p99(fromPod)} (pod -> CoreDNS)`, (median(fqdnAfter) / median(fromPod)).toFixed(2));
    row(`DNS ${SINK}.${ns} (search path), p50 / p99`, p50p99(shortAfter), `${p50p99(fromPod)} (pod, full name)`, (median(shortAfter) / median(fromPod)).toFixed(2));
    row(`DNS a new name each time, ${newName.replace('{i}', '<new>')} (NXDOMAIN), p50 / p99`, p50p99(freshAfter), `${p50p99(freshFromPod)} (pod -> CoreDNS)`, (median(freshAfter) / median(freshFromPod)).toFixed(2));
    row(`DNS ${OUTSIDE_NAME} (dnsmasq's), p50 / p99`, p50p99(outsideAfter), `${p50p99(outsideBefore)} (before connect)`, (median(outsideAfter) / median(outsideBefore)).toFixed(2));
    row(`DNS ${EXCLUDED_NAME} (dnsmasq's, excluded suffix), p50 / p99`, p50p99(excludedAfter), `${p50p99(excludedBefore)} (before connect)`, (median(excludedAfter) / median(excludedBefore)).toFixed(2));
    const dnsCluster = (dnsAfter.connection?.outbound?.dnsClusterQueries ?? 0) - (dnsBefore.connection?.outbound?.dnsClusterQueries ?? 0);
    const dnsUp = (dnsAfter.connection?.outbound?.dnsUpstreamQueries ?? 0) - (dnsBefore.connection?.outbound?.dnsUpstreamQueries ?? 0);
    detail('DNS queries the daemon sent during those lookups', `${dnsCluster} to the cluster, ${dnsUp} upstream, for ${5 * (KNOBS.lookups + 20)} lookups`);
    const range = (xs: readonly number[], f: (x: number) => string): string => `${f(median(xs))} (${f(Math.min(...xs))}-${f(Math.max(...xs))})`;
    const started = connects.nothing.map((r) => r.networkDaemon ?? NaN);
    row('root starts the network daemon (returns once it listens), median (min-max)', range(started, secs));
    for (const [label, runs] of [['nothing running', connects.nothing], ['network daemon running', connects.network], ['both daemons running', connects.both]] as const) {
      const totals = runs.map((r) => r.connect + r.firstAnswer);
      row(`connect, ${label}: the command, median (min-max)`, range(runs.map((r) => r.connect), secs));
      row('  then the first answer by name, median (min-max)', range(runs.map((r) => r.firstAnswer), ms));
      row('  command + first answer, median (min)', `${secs(median(totals))} (${secs(Math.min(...totals))})`, '', '', `<= 1 s: ${median(totals) <= 1000 ? 'met' : 'MISSED'}`);
    }
    detail('RSS idle after connect', idleMemory);
    detail(`RSS right after the outbound transfers`, afterBulkMemory);
    detail(`CPU s/GB, outbound GET`, cpuText(downOut));
    detail(`CPU s/GB, port-forward GET`, cpuText(downPf));
    detail(`CPU s/GB, outbound POST`, cpuText(upOut));
    detail(`CPU s/GB, port-forward POST`, cpuText(upPf));
    if (viaFloor !== undefined && fFloor !== undefined && kFloor !== undefined && rFloor !== undefined && downFloor !== undefined && upFloor !== undefined) {
      row('floor: bare Outbound stream, new-connection round trip p50 / p99', p50p99(fFloor), p50p99(fPf), `${vs(fFloor, fPf, 50).toFixed(2)} / ${vs(fFloor, fPf, 99).toFixed(2)}`);
      row('floor: bare Outbound stream, keep-alive round trip p50 / p99', p50p99(kFloor), p50p99(kPf), `${vs(kFloor, kPf, 50).toFixed(2)} / ${vs(kFloor, kPf, 99).toFixed(2)}`);
      row('floor: bare Outbound stream, GET / POST', `${downFloor.mbps.toFixed(1)} / ${upFloor.mbps.toFixed(1)} MB/s`, `${downPf.mbps.toFixed(1)} / ${upPf.mbps.toFixed(1)} MB/s`, `${(downFloor.mbps / downPf.mbps).toFixed(2)} / ${(upFloor.mbps / upPf.mbps).toFixed(2)}`);
      row('floor: bare Outbound stream, connections/s seq / 8', `${rFloor.sequential.toFixed(0)} / ${rFloor.concurrent.toFixed(0)}`);
      detail('CPU s/GB, floor GET', cpuText(downFloor));
      detail('CPU s/GB, floor POST', cpuText(upFloor));
    } else {
      row('floor: bare Outbound stream', `not (fully) measured: ${floorProblem}`);
    }
    if (managerPodsAfter !== managerPodsBefore) {
      detail('WARNING', `the traffic-manager's pods changed during the run (${managerPodsBefore} -> ${managerPodsAfter}): another client restarted it, and the figures after that are suspect`);
    }
    row('flows the daemon carried (status)', `${flows.connection?.outbound?.tcpFlows ?? '?'} TCP`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }

  const widths = (['figure', 'outbound', 'baseline', 'ratio'] as const).map((k) => Math.max(k.length, ...rows.map((r) => r[k].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i] ?? 0) : c)).join('  ').trimEnd();
  process.stdout.write(`\noutbound benchmark (${new Date().toISOString().slice(0, 16)}Z, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})\n`);
  process.stdout.write(`${line(['figure', 'outbound', 'baseline (port-forward unless said)', 'ratio', 'target'])}\n`);
  for (const r of rows) process.stdout.write(`${line([r.figure, r.outbound, r.baseline, r.ratio, r.target])}\n`);
  process.stdout.write('\n');
  for (const [figure, value] of details) process.stdout.write(`${figure}: ${value}\n`);
}

// ---------------------------------------------------------------------------------------------
// floor-relay: loopback -> Manager.Outbound over the daemon's kind of port-forward -> the Service

function unary<Req, Res>(call: (req: Req, cb: (err: Error | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((ok, fail) => {
    call(req, (err, res) => (err !== null ? fail(err) : ok(res)));
  });
}

async function floorRelay(): Promise<void> {
  const managerNs = process.env['TP_OBENCH_MANAGER_NS'] ?? MANAGER_NS;
  const destination = `${process.env['TP_OBENCH_SERVICE_IP'] ?? ''}:80`;
  // The daemon's own way to the manager (core/src/daemon/manager-connection.ts): a SPDY
  // port-forward to the manager pod, and a channel with the tunnel's flow-control window.
  const kube = await createKubeApi({ kubeconfigEnv: process.env['KUBECONFIG'] });
  const pod = await findManagerPod(kube, managerNs);
  const forward = await kube.portForward(managerNs, pod.name, pod.port);
  const manager: ManagerClient = new TunnelManagerClient(`127.0.0.1:${forward.localPort}`, credentials.createInsecure(), { ...TUNNEL_CHANNEL_OPTIONS });
  const session: SessionInfo = await unary(manager.arriveAsClient.bind(manager), { name: 'outbound-bench floor relay', installId: randomUUID(), product: 'cli', version: process.env['TP_OBENCH_VERSION'] ?? '', resumeSessionId: '' });
  setInterval(() => manager.remain(session, () => undefined), Math.max(1, session.heartbeatSeconds || 5) * 1000).unref();

  const server = createNetServer({ allowHalfOpen: true }, (socket) => {
    socket.pause();
    const call: ClientDuplexStream<TunnelMessage, TunnelMessage> = manager.outbound();
    call.write({ open: { sessionId: session.sessionId, connectionId: randomUUID(), interceptId: '', protocol: 'tcp', destination, containerPort: 0 } });
    let open = false;
    let sentClose = false;
    let gotClose = false;
    const finish = (): void => {
      if (sentClose && gotClose) call.end();
    };
    call.on('data', (m: TunnelMessage) => {
      if (!open) {
        if (m.open !== undefined) {
          open = true;
          socket.on('data', (c: Buffer) => {
            if (!call.write({ data: c })) {
              socket.pause();
              call.once('drain', () => socket.resume());
            }
          });
          socket.on('end', () => {
            sentClose = true;
            call.write({ close: { error: '' } });
            finish();
          });
          socket.resume();
        } else {
          socket.destroy();
          call.cancel();
        }
        return;
      }
      if (m.data !== undefined) {
        if (!socket.write(m.data)) {
          call.pause();
          socket.once('drain', () => call.resume());
        }
      } else if (m.close !== undefined) {
        gotClose = true;
        socket.end();
        finish();
      }
    });
    call.on('error', () => socket.destroy());
    call.on('end', () => socket.end());
    socket.on('error', () => call.cancel());
    socket.on('close', () => {
      if (!(sentClose && gotClose)) call.cancel();
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`floor relay listening on ${(server.address() as AddressInfo).port}\n`));
  await new Promise<void>((done) => process.once('SIGTERM', done));
  server.close();
  await unary(manager.depart.bind(manager), session).catch(() => undefined);
  manager.close();
  await forward.close();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The outer role: set up, measure inside, take it all away

async function outer(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run it as root: the workstation is a network namespace of its own');
  const cluster = loadClusterEnv();
  const kube = createKube(cluster.kubeconfig);
  const repoRoot = findRepoRoot(process.cwd());
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const ns = `tp-obench-${randomBytes(3).toString('hex')}`;
  const self = resolve(process.argv[1] ?? '');
  progress(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  // Ctrl-C or a kill ends the measuring child, not this process: the clean-up below still runs.
  let measuring: ChildProcess | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    measuring?.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const stopIfInterrupted = (): void => {
    if (interrupted) throw new Error('interrupted');
  };

  progress('building and loading images');
  for (const image of ['echo', 'traffic-manager', 'agent-injector']) {
    await prepareImage({ repoRoot, imageDir: image, image: image === 'echo' ? ECHO_IMAGE : `tp-local/${image}:${version}`, kubeconfig: cluster.kubeconfig });
  }
  const managerWasInstalled = (await kube.kubectl(['get', 'namespaces', '-o', 'name'])).split('\n').includes(`namespace/${MANAGER_NS}`);
  if (managerWasInstalled) progress(`a traffic-manager is installed already: using it as it is`);
  const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
  let netns: Awaited<ReturnType<typeof createWorkstationNetns>> | undefined;
  let exitCode: number | null;
  try {
    progress(`the sink workload in namespace ${ns}`);
    await kube.apply([
      namespace(ns),
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: SINK, namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: SINK } },
          template: {
            metadata: { labels: { app: SINK } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: SINK,
                  image: ECHO_IMAGE,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['node', '-e', SINK_SCRIPT],
                  ports: [{ name: 'http', containerPort: SINK_PORT }],
                  readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: SINK, namespace: ns }, spec: { selector: { app: SINK }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    ]);
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${SINK}`, '--timeout=180s'], { timeoutMs: 190_000 });
    stopIfInterrupted();
    const serviceIp = (await kube.kubectl(['-n', ns, 'get', 'service', SINK, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const pods = (await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${SINK}`])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
    const pod = pods[0]?.metadata.name;
    if (pod === undefined) throw new Error(`no pod of ${SINK}`);

    progress('installing the traffic-manager (if needed)');
    await cli.ok(['install'], 300_000);

    progress('the workstation network namespace');
    netns = await createWorkstationNetns({ repoRoot, kubeconfig: cluster.kubeconfig, hosts: { [EXCLUDED_NAME]: EXCLUDED_ADDRESS } });
    const unreachable = await netns.run(['node', '-e', `require('net').connect(80, '${serviceIp}').on('connect', () => process.exit(0)).on('error', () => process.exit(3)).setTimeout(2000, () => process.exit(4))`], { timeoutMs: 10_000 });
    if (unreachable.exitCode === 0) throw new Error(`${netns.name} reaches ${serviceIp} before connect: the figures would not be outbound access's`);
    stopIfInterrupted();

    // The CLI runs as a user other than root, as a developer's does; root runs the network daemon.
    const user = await netns.unprivileged();
    progress(`measuring inside ${netns.name}, the CLI as uid ${user.uid}`);
    const env = {
      ...netns.env,
      TP_OBENCH_NS: ns,
      TP_OBENCH_SERVICE_IP: serviceIp,
      TP_OBENCH_POD: pod,
      TP_OBENCH_SCRIPT: self,
      TP_OBENCH_MANAGER_NS: MANAGER_NS,
      TP_OBENCH_VERSION: version,
      TP_OBENCH_USER: JSON.stringify({ uid: user.uid, gid: user.gid, env: user.env }),
    };
    const child = spawn('ip', ['netns', 'exec', netns.name, process.execPath, self, 'inside'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    measuring = child;
    // Bounded: the defaults take several minutes; an hour means something hangs.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60 * 60_000);
    exitCode = await new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    clearTimeout(timer);
  } finally {
    progress('cleaning up');
    const problems: string[] = [];
    if (netns !== undefined) {
      const user = await netns.unprivileged();
      const quit = await netns.run(['kubectl', 'telepresence', 'quit'], { as: user, env: user.env, timeoutMs: 30_000 });
      if (quit.exitCode !== 0) problems.push(`quit inside the namespace: ${quit.stderr.trim()}`);
      await netns.run(['kubectl', 'telepresence', 'network-daemon', '--stop'], { env: { ...netns.env, TELEPRESENCE_NETWORK_SOCKET: user.env['TELEPRESENCE_NETWORK_SOCKET'] }, timeoutMs: 30_000 });
      await netns.destroy().catch((err: unknown) => problems.push((err as Error).message));
    }
    await cli.dispose();
    await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 }).catch((err: unknown) => problems.push((err as Error).message));
    if (!managerWasInstalled) {
      await kube.kubectl(['delete', 'mutatingwebhookconfigurations', '-l', 'app.kubernetes.io/managed-by=telepresence-ts', '--ignore-not-found']).catch((err: unknown) => problems.push((err as Error).message));
      await kube.kubectl(['delete', 'namespace', MANAGER_NS, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 }).catch((err: unknown) => problems.push((err as Error).message));
      await kube.kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', 'app.kubernetes.io/managed-by=telepresence-ts', '--ignore-not-found']).catch((err: unknown) => problems.push((err as Error).message));
    }
    for (const p of problems) progress(`cleanup: ${p}`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  }
  if (exitCode !== 0) throw new Error(`the measuring part inside the namespace exited ${String(exitCode)}`);
}

const role = process.argv[2];
const main = role === 'inside' ? inside : role === 'floor-relay' ? floorRelay : outer;
main().catch((err: unknown) => {
  process.stderr.write(`outbound benchmark${role !== undefined ? ` (${role})` : ''} failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
