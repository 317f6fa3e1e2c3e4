/**
 * The intercept benchmark: prints figures, asserts nothing. Run it with
 * `bash test/bench/intercept.sh` on a cluster brought up by `npm run cluster:up`.
 *
 * Every request is sent from the node's own network namespace to the Service's ClusterIP, so it
 * takes the path a pod's request takes (kube-proxy's DNAT to the pod, the agent, the manager,
 * the workstation's daemon) without a `kubectl exec` per request clouding the figures. On the
 * harness cluster the workstation is the node; elsewhere run it from a machine that can reach
 * ClusterIPs, or set TP_BENCH_SKIP_ROUTED=1 to print only the figures that need no such route.
 *
 * What is compared with what:
 * Intercepts are made with --mount=false: mounting the volumes is its own step (sshfs over a
 * port-forward), measured by test/bench/volume-read.sh; these figures are the traffic path's.
 *
 *   connect          `kubectl telepresence connect` with no daemon running (starts it)
 *   warm intercept   `intercept` of a workload that already carries the agent, until the first
 *                    request is answered by the workstation
 *   cold intercept   the same for a workload without the agent (injection + rollout), minus the
 *                    bare `kubectl rollout restart` of that workload until the Service sends its
 *                    requests to restarted pods only (ten answers in a row from them): `intercept`
 *                    returns after a rollout only once the Service routes to pods with the agent
 *                    alone. The restart until a restarted pod first answers is printed too.
 *   round trip       GET of a tiny body on one keep-alive connection: through the intercept, and
 *                    to the same pod's app over `kubectl port-forward`, in alternating rounds
 *   personal trip    the same through a personal intercept (`--http-header`), whose agent reads
 *                    every request's head to route it, against the global intercept's measured
 *                    again just before; and a request without the header, which that agent
 *                    passes to the app
 *   throughput       a large body each way: through the intercept (GET and POST from the
 *                    cluster), and over `kubectl port-forward` moving the bytes the same way
 *   relayed          the round trip and throughput again for a user who may not port-forward
 *                    to the workload's pods, whose connections the traffic-manager relays
 *                    (no target; port-forward measured again beside it)
 *   concurrency      requests/s with 16 in flight through a global and a personal intercept,
 *                    against the app's own rate (no intercept) in the same run, and how many
 *                    intercepted connections took a direct tunnel or the relay, beside the
 *                    same load over `kubectl port-forward` (the floor); once with a connection
 *                    per request, once over keep-alive connections
 *   pulled           the cold intercept again with the agent image pulled from a registry, as
 *                    on a cluster that is not ours: a registry on this machine
 *                    (test/cluster/registry.sh), the images pushed by scripts/push-images.sh,
 *                    `install --registry`, and the agent image removed from the nodes before each
 *                    run; against the cold intercept with the image side-loaded, same run
 *   evicted          a copy of the app with two replicas: its cold intercept, whose agent comes by
 *                    evicting one pod after the other (the Deployment stays unchanged, checked by
 *                    its generation), against its own bare rollout restart in the same run
 *   agent memory     VmRSS of the traffic-agent process while idle: as it starts, and after the
 *                    traffic of the other parts, and TP_BENCH_MEMORY_MB more through an intercept
 *                    without the throughput figures, right after and 10 s later; and a bare
 *                    `node` in the same container
 *
 *   wiretap          the app's round trip (no intercept) with a wiretap attached, against the same
 *                    round trip without one measured just before and just after (their mean), on
 *                    one keep-alive connection and with a connection per request; then with the
 *                    wiretap's local process stopped (every copy fails and is dropped). The
 *                    wiretap's server runs as a process of its own, as on a workstation, but
 *                    on this machine's cores: the floor sends each request to it straight from
 *                    here as well, with nothing of ours in between, to show what serving the
 *                    copies costs the machine by itself.
 *
 * TP_BENCH_PARTS picks parts by name (comma-separated: connect, cold, pulled, evicted, warm, trips,
 * personal, wiretap, relayed, concurrency, memory); the others are skipped. `pulled` needs `cold` (its
 * baseline).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findRepoRoot, prepareImage } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createRestrictedUser } from '../src/restricted-user.js';
import { createTelepresenceCli } from '../src/telepresence-cli.js';

/** The parts of the benchmark, in the order they run; TP_BENCH_PARTS picks some (all by default). */
const ALL_PARTS = ['connect', 'cold', 'pulled', 'evicted', 'warm', 'trips', 'personal', 'wiretap', 'relayed', 'concurrency', 'memory'] as const;
type Part = (typeof ALL_PARTS)[number];
const PARTS = partsFromEnv('TP_BENCH_PARTS');
const want = (part: Part): boolean => PARTS.has(part);

const RUNS = {
  connect: intFromEnv('TP_BENCH_CONNECT_RUNS', 5),
  warm: intFromEnv('TP_BENCH_WARM_RUNS', 5),
  cold: intFromEnv('TP_BENCH_COLD_RUNS', 3),
  requests: intFromEnv('TP_BENCH_REQUESTS', 1000),
  bulkBytes: intFromEnv('TP_BENCH_BULK_MB', 256) * 1024 * 1024,
  /** Requests per path of the concurrency figure, and how many are in flight at once. */
  loadRequests: intFromEnv('TP_BENCH_LOAD_REQUESTS', 3000),
  concurrency: intFromEnv('TP_BENCH_CONCURRENCY', 16),
  /** MB moved through the intercept before the agent's idle memory is read again (memory part). */
  memoryMb: intFromEnv('TP_BENCH_MEMORY_MB', 1024),
};
const MANAGER_NS = 'tp-system';
/** The traffic-agent's idle RSS targets: as it starts, and after a GB or more went through it. */
const AGENT_IDLE_MB = 52;
const AGENT_AFTER_TRAFFIC_MB = 64;
const execFileAsync = promisify(execFile);
/** A bash script of the repository to completion; its stdout (throws with its stderr on failure). */
const script = async (path: string, ...args: string[]): Promise<string> => (await execFileAsync('bash', [path, ...args], { timeout: 600_000 })).stdout;
const APP_PORT = 8080;
/**
 * How long one probe of "who answers now" may take. Right after a rollout, kube-proxy keeps an
 * old pod in the Service's rules for up to its 1 s minimum sync period after the pod is gone; a
 * connection sent there hangs, and a 1 s timeout made the restart and the cold intercept each
 * lose a second or not by the luck of one probe. A tiny GET answers in about a millisecond.
 */
const PROBE_TIMEOUT_MS = 250;

function partsFromEnv(name: string): ReadonlySet<Part> {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return new Set(ALL_PARTS);
  const parts = raw.split(',').map((p) => p.trim());
  const unknown = parts.filter((p) => !(ALL_PARTS as readonly string[]).includes(p));
  if (unknown.length > 0) throw new Error(`${name}: unknown part ${unknown.join(', ')}; the parts are ${ALL_PARTS.join(', ')}`);
  return new Set(parts as Part[]);
}

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${raw}"`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// The served API, the same in the pod (this script) and on the workstation (handlerFor): any
// path answers `who`, GET /bytes?n=N streams N bytes, POST /sink reads the body and answers its
// length, GET /host answers the host (the pod's) name.

const SERVER_SCRIPT = `
const chunk = Buffer.alloc(65536, 120);
module.exports = (who) => (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/sink') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    return void req.on('end', () => res.end(String(n)));
  }
  if (url.pathname === '/bytes') {
    let left = Number(url.searchParams.get('n'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  res.setHeader('content-type', 'text/plain');
  res.end(url.pathname === '/healthz' ? 'ok' : url.pathname === '/host' ? require('node:os').hostname() : who);
};`;

/** The same API for the workstation's server (the pod runs SERVER_SCRIPT). */
function handlerFor(who: string): (req: IncomingMessage, res: ServerResponse) => void {
  const chunk = Buffer.alloc(65536, 120);
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/sink') {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
      return;
    }
    if (url.pathname !== '/bytes') {
      res.setHeader('content-type', 'text/plain');
      res.end(url.pathname === '/healthz' ? 'ok' : who);
      return;
    }
    let left = Number(url.searchParams.get('n'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  };
}

const APP_COMMAND = `const m = {}; (function (module) {${SERVER_SCRIPT}})(m); require('node:http').createServer(m.exports('app')).listen(${APP_PORT});`;

// ---------------------------------------------------------------------------------------------
// Figures

interface Figure {
  readonly name: string;
  readonly value: string;
  readonly target: string;
  readonly met: boolean | undefined;
}
const figures: Figure[] = [];

function record(name: string, value: string, target = '', met: boolean | undefined = undefined): void {
  figures.push({ name, value, target, met });
  process.stderr.write(`  ${name}: ${value}${target !== '' ? ` (target ${target})` : ''}\n`);
}

function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const s = (x: number): string => `${(x / 1000).toFixed(2)} s`;

function progress(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

function get(url: string, agent: Agent | false, timeoutMs = 5000, headers: Record<string, string> = {}): Promise<{ status: number; body: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: timeoutMs, headers }, (res) => {
      let bytes = 0;
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (parts.length < 4) parts.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).subarray(0, 256).toString(), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * When ten GETs of `url` in a row, each on a connection of its own so that the Service routes
 * each afresh, were answered by pods in `fresh` (performance.now()). A request that times out or
 * is answered by another pod starts the count again.
 */
async function onlyAnsweredBy(url: string, fresh: ReadonlySet<string>): Promise<number> {
  let inARow = 0;
  const deadline = performance.now() + 60_000;
  while (inARow < 10) {
    if (performance.now() > deadline) throw new Error('the Service still sends requests to pods that were not restarted, after 60 s');
    const host = await get(url, false, PROBE_TIMEOUT_MS).then(
      (r) => r.body,
      () => '',
    );
    inARow = fresh.has(host) ? inARow + 1 : 0;
  }
  return performance.now();
}

/** Where round trips go: a base URL, and the headers a personal intercept matches. */
interface RoundTripPath {
  readonly base: string;
  readonly headers?: Record<string, string>;
}

/** How many alternating rounds `roundTrips` splits its requests into. */
const ROUNDS = 10;

/**
 * Round trips of GET /ping over each path, on one keep-alive connection per path after 50
 * warm-up requests each, in milliseconds: `count` per path, taken in ROUNDS alternating rounds.
 * Paths compared with each other are measured together this way, so that the machine's drift
 * over the seconds this takes (other processes, the state the transfers left) weighs on each
 * alike rather than on whichever went last.
 */
async function roundTrips(paths: readonly RoundTripPath[], count: number): Promise<number[][]> {
  const agents = paths.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
  try {
    const once = async (index: number): Promise<number> => {
      const { base, headers = {} } = paths[index] as RoundTripPath;
      const t0 = performance.now();
      const r = await get(`${base}/ping`, agents[index] as Agent, 5000, headers);
      const took = performance.now() - t0;
      if (r.status !== 200) throw new Error(`GET ${base}/ping answered ${r.status}`);
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
    for (const agent of agents) agent.destroy();
  }
}

/**
 * Round trips of GET /ping on a connection of their own each (no keep-alive), in milliseconds,
 * after 20 warm-up requests: what a caller that does not keep connections pays, which for a
 * wiretapped port includes opening the copy's tunnel.
 */
async function freshTrips(base: string, count: number, alongside?: () => void): Promise<number[]> {
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    alongside?.();
    const r = await get(`${base}/ping`, false);
    if (r.status !== 200) throw new Error(`GET ${base}/ping answered ${r.status}`);
    return performance.now() - t0;
  };
  for (let i = 0; i < 20; i++) await once();
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(await once());
  return out;
}

/** A wiretap's receiving server, as its own process: prints `seen <n>` at its first request and on each `count` line. */
const TAP_SERVER = `
let n = 0;
const server = require('node:http').createServer((req, res) => { n++; if (n === 1) console.log('seen 1'); req.resume(); req.on('end', () => res.end('tap')); });
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
process.stdin.on('data', () => console.log('seen ' + n));
`;

/**
 * The client of a bulk transfer, run as its own process as a pod's client would be: otherwise
 * this process would both serve the workstation's side of an intercept and be the cluster's
 * client, paying for both ends while `kubectl port-forward`'s far end runs in the pod. Prints
 * the milliseconds the transfer took.
 */
const BULK_CLIENT = `
const http = require('node:http');
const [url, n, mode] = process.argv.slice(1);
const size = Number(n);
const t0 = performance.now();
const req = http.request(url, { method: mode === 'get' ? 'GET' : 'POST', agent: false, headers: mode === 'get' ? {} : { 'content-length': n } }, (res) => {
  const parts = [];
  let got = 0;
  res.on('data', (c) => { got += c.length; if (mode !== 'get') parts.push(c); });
  res.on('end', () => {
    const moved = mode === 'get' ? got : Number(Buffer.concat(parts).toString());
    if (moved !== size) { console.error('moved ' + moved + ' of ' + size + ' bytes'); process.exit(1); }
    const cpu = process.cpuUsage();
    console.log(performance.now() - t0, (cpu.user + cpu.system) / 1000);
  });
});
req.on('error', (e) => { console.error(e.message); process.exit(1); });
if (mode === 'get') req.end();
else {
  const chunk = Buffer.alloc(65536, 120);
  let left = size;
  const pump = () => {
    while (left > 0) {
      const k = Math.min(left, chunk.length);
      left -= k;
      if (!req.write(k === chunk.length ? chunk : chunk.subarray(0, k))) return void req.once('drain', pump);
    }
    req.end();
  };
  pump();
}
`;

/**
 * CPU time per process, for TP_BENCH_CPU=1: which processes a transfer keeps busy, as the
 * machine's cores are what the two paths compete for. Processes are found by name in /proc.
 */
const CPU_WATCHED: ReadonlyArray<readonly [string, (comm: string, args: string, pid: number) => boolean]> = [
  ['kube-apiserver', (comm) => comm === 'kube-apiserver'],
  ['kubelet', (comm) => comm === 'kubelet'],
  ['containerd', (comm) => comm === 'containerd'],
  ['kubectl port-forward', (comm, args) => comm.startsWith('kubectl') && args.includes('port-forward')],
  ['telepresence daemon', (_comm, args) => args.includes('daemon-foreground')],
  ['traffic-agent', (_comm, args) => args.includes('/app/agent.js')],
  ['traffic-manager', (_comm, args) => args.includes('/app/manager.js')],
  ['app in the pod', (_comm, args) => args.includes("m.exports('app')")],
  ['workstation server (this process)', (_comm, _args, pid) => pid === process.pid],
];
const CPU_TICKS_PER_S = 100;

/** Clock ticks of CPU (user + system) by watched name, summed over that name's processes. */
function cpuTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const watched = CPU_WATCHED.find(([, match]) => match(comm, args, pid));
      if (watched === undefined) continue;
      // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      out.set(watched[0], (out.get(watched[0]) ?? 0) + ticks);
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

const cpuReport = process.env['TP_BENCH_CPU'] === '1';

/**
 * MB/s of moving `n` bytes, the best of three: `download` is a GET /bytes (the server sends),
 * otherwise a POST /sink (the client sends), each by a client process of its own. With
 * TP_BENCH_CPU=1 it also records the CPU seconds each process spent per GB moved.
 */
async function throughput(label: string, base: string, n: number, download: boolean): Promise<number> {
  let best = 0;
  const before = cpuReport ? cpuTicks() : new Map<string, number>();
  let clientMs = 0;
  for (let i = 0; i < 3; i++) {
    const url = download ? `${base}/bytes?n=${n}` : `${base}/sink`;
    const { stdout } = await execFileAsync(process.execPath, ['-e', BULK_CLIENT, url, String(n), download ? 'get' : 'post'], { timeout: 300_000 });
    const [took, cpu] = stdout.trim().split(' ').map(Number);
    if (took === undefined || !Number.isFinite(took) || took <= 0) throw new Error(`bulk client for ${url} printed ${stdout}`);
    clientMs += cpu ?? 0;
    best = Math.max(best, n / 1024 / 1024 / (took / 1000));
  }
  if (cpuReport) {
    const after = cpuTicks();
    const gb = (3 * n) / 1024 ** 3;
    const parts = [...after]
      .map(([name, ticks]) => [name, (ticks - (before.get(name) ?? 0)) / CPU_TICKS_PER_S / gb] as const)
      .concat([['bulk client', clientMs / 1000 / gb]])
      .filter(([, perGb]) => perGb > 0)
      .sort((a, b) => b[1] - a[1]);
    record(`CPU per GB, ${label}`, parts.map(([name, perGb]) => `${name} ${perGb.toFixed(2)} s`).join(', '));
  }
  return best;
}

/**
 * The client of a concurrency figure, a process of its own as BULK_CLIENT is: `total` GETs of
 * /ping with `concurrency` in flight at once, each on a connection of its own (`close`, as a
 * client without keep-alive makes them, so that every request is a new intercepted connection)
 * or on `concurrency` keep-alive connections (`keepalive`). A request answered by someone else
 * than `who`, or not at all, counts as failed. The first `warmup` requests are not timed. Prints
 * the milliseconds the timed ones took and how many failed.
 */
const LOAD_CLIENT = `
const http = require('node:http');
const [url, total, concurrency, mode, who, headersJson, warmup] = process.argv.slice(1);
const agent = mode === 'keepalive' ? new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) }) : false;
const headers = JSON.parse(headersJson);
const run = (n, done) => {
  let started = 0, finished = 0, failed = 0;
  const t0 = performance.now();
  const next = (ok) => {
    if (!ok) failed++;
    if (++finished === n) return done(performance.now() - t0, failed);
    one();
  };
  const one = () => {
    if (started >= n) return;
    started++;
    const req = http.request(url, { agent, headers }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => next(res.statusCode === 200 && Buffer.concat(parts).toString() === who));
      res.on('error', () => next(false));
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => next(false));
    req.end();
  };
  for (let i = 0; i < Math.min(n, Number(concurrency)); i++) one();
};
run(Number(warmup), () => run(Number(total), (ms, failed) => { console.log(ms, failed); process.exit(0); }));
`;

interface LoadResult {
  /** Requests per second over the timed requests. */
  readonly rate: number;
  readonly failed: number;
}

/** Runs LOAD_CLIENT against `base`/ping; see there. */
async function load(base: string, who: string, mode: 'close' | 'keepalive', headers: Record<string, string> = {}): Promise<LoadResult> {
  const args = ['-e', LOAD_CLIENT, `${base}/ping`, String(RUNS.loadRequests), String(RUNS.concurrency), mode, who, JSON.stringify(headers), String(Math.min(200, RUNS.loadRequests))];
  const { stdout } = await execFileAsync(process.execPath, args, { timeout: 300_000 });
  const [took, failed] = stdout.trim().split(' ').map(Number);
  if (took === undefined || !Number.isFinite(took) || took <= 0) throw new Error(`load client for ${base} printed ${stdout}`);
  return { rate: RUNS.loadRequests / (took / 1000), failed: failed ?? NaN };
}

/** The daemon's log lines that match `pattern` (its log is in the CLI's own cache folder). */
function daemonWarnings(cli: ReturnType<typeof createTelepresenceCli>, pattern: RegExp): string[] {
  try {
    return readFileSync(join(cli.runtimeDir, 'cache', 'telepresence-ts', 'daemon.log'), 'utf8')
      .split('\n')
      .filter((line) => pattern.test(line));
  } catch {
    return [];
  }
}

/** Intercepted connections so far, by path (the daemon's `directConnections`/`relayedConnections`). */
async function connectionCounts(cli: ReturnType<typeof createTelepresenceCli>): Promise<{ direct: number; relayed: number }> {
  const status = await cli.json<{ connection?: { interceptedConnections?: { direct: number; relayed: number } } }>(['status']);
  const counts = status.connection?.interceptedConnections;
  if (counts === undefined) throw new Error('status --output json names no interceptedConnections');
  return counts;
}

/**
 * Requests per second at TP_BENCH_CONCURRENCY (16) in flight, through a global and through a
 * personal intercept, each against the app's own rate (no intercept: the agent passes every
 * connection to the app) measured in the same run, before and after the two, and how many of
 * the intercepted connections took a direct tunnel or the traffic-manager's relay. Once with a
 * connection per request (each one intercepted anew) and once over keep-alive connections.
 */
async function concurrencyFigures(
  cli: ReturnType<typeof createTelepresenceCli>,
  base: string,
  app: string,
  ns: string,
  localPort: number,
  forwardToApp: () => Promise<{ url: string; stop: () => Promise<void> }>,
): Promise<void> {
  const mine = { 'x-bench': 'personal' };
  const c = RUNS.concurrency;
  for (const mode of ['close', 'keepalive'] as const) {
    const how = mode === 'close' ? 'a connection per request' : 'keep-alive';
    progress(`concurrency ${c}, ${how}: the app, a global intercept, a personal one, the app again (${RUNS.loadRequests} requests each)`);
    const appBefore = await load(base, 'app', mode);
    await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 60_000);
    await firstAnswerFrom(base, 'workstation', 30_000);
    const g0 = await connectionCounts(cli);
    const global = await load(base, 'workstation', mode);
    const g1 = await connectionCounts(cli);
    await cli.ok(['leave', `${app}-${ns}`]);
    await firstAnswerFrom(base, 'app', 30_000);
    await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`, '--name', 'bench-personal', '--http-header', 'x-bench=personal'], 60_000);
    await firstAnswerFrom(base, 'workstation', 30_000, mine);
    const p0 = await connectionCounts(cli);
    const personal = await load(base, 'workstation', mode, mine);
    const p1 = await connectionCounts(cli);
    await cli.ok(['leave', 'bench-personal']);
    await firstAnswerFrom(base, 'app', 30_000, mine);
    const appAfter = await load(base, 'app', mode);
    const appRate = (appBefore.rate + appAfter.rate) / 2;
    // The floor: the same load over `kubectl port-forward` to the app's pod. Every intercepted
    // connection crosses a port-forward stream as these do (API server, kubelet, the runtime's
    // dial into the pod), so no intercept can beat this ratio on this machine.
    const forward = await forwardToApp();
    const floor = await load(forward.url, 'app', mode).finally(() => forward.stop());
    const warnings = daemonWarnings(cli, /no direct tunnels to/);
    if (warnings.length > 0) progress(`the daemon gave up on direct tunnels ${warnings.length} times; last: ${warnings[warnings.length - 1] ?? ''}`);
    const failed = (r: LoadResult): string => (r.failed > 0 ? `, ${r.failed} failed` : '');
    const paths = (a: { direct: number; relayed: number }, b: { direct: number; relayed: number }): string => `connections: ${b.direct - a.direct} direct, ${b.relayed - a.relayed} relayed`;
    record(`requests/s at concurrency ${c}, ${how}: the app, before / after`, `${appBefore.rate.toFixed(0)} / ${appAfter.rate.toFixed(0)}${failed(appBefore)}${failed(appAfter)}`);
    record(`requests/s at concurrency ${c}, ${how}: kubectl port-forward (the floor)`, `${floor.rate.toFixed(0)}, ratio ${(floor.rate / appRate).toFixed(2)}${failed(floor)}`);
    record(`requests/s at concurrency ${c}, ${how}: global intercept`, `${global.rate.toFixed(0)}, ratio ${(global.rate / appRate).toFixed(2)}${failed(global)}; ${paths(g0, g1)}`, '>= 0.5', global.rate / appRate >= 0.5);
    record(`requests/s at concurrency ${c}, ${how}: personal intercept`, `${personal.rate.toFixed(0)}, ratio ${(personal.rate / appRate).toFixed(2)}${failed(personal)}; ${paths(p0, p1)}`, '>= 0.5', personal.rate / appRate >= 0.5);
  }
}

/** One transfer of `n` bytes by BULK_CLIENT: a GET /bytes when `download`, else a POST /sink. */
async function moveOnce(base: string, n: number, download: boolean): Promise<void> {
  const url = download ? `${base}/bytes?n=${n}` : `${base}/sink`;
  await execFileAsync(process.execPath, ['-e', BULK_CLIENT, url, String(n), download ? 'get' : 'post'], { timeout: 300_000 });
}

/** Polls with fresh connections until `who` answers /ping; returns when it did (performance.now()). */
async function firstAnswerFrom(base: string, who: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    try {
      const r = await get(`${base}/ping`, false, PROBE_TIMEOUT_MS, headers);
      if (r.body === who) return performance.now();
      last = r.body;
    } catch (err: unknown) {
      last = (err as Error).message;
    }
    await new Promise((ok) => setTimeout(ok, 10));
  }
  throw new Error(`${base}/ping was not answered by ${who} within ${timeoutMs} ms (last: ${last})`);
}

// ---------------------------------------------------------------------------------------------

/**
 * The same figures for a user who may not port-forward to the workload's pods, whose intercepted
 * connections therefore take the traffic-manager's relay (two gRPC hops and the manager's
 * process) instead of a direct tunnel. No targets: they show what such users get. Port-forward
 * is measured again right after, as the machine's state has moved on since the figures above.
 */
async function relayedFigures(
  kube: ReturnType<typeof createKube>,
  ns: string,
  base: string,
  forwardToApp: () => Promise<{ url: string; stop: () => Promise<void> }>,
  cliFor: (dir: string) => ReturnType<typeof createTelepresenceCli>,
  app: string,
  localPort: number,
): Promise<void> {
  progress('relayed intercept: a user without pods/portforward on the workload');
  const dir = mkdtempSync(join(tmpdir(), 'tp-bench-dev-'));
  await createRestrictedUser(kube, ns, 'bench-dev', join(dir, 'restricted.kubeconfig'));
  const dev = cliFor(dir);
  const forward = await forwardToApp();
  try {
    const out = await dev.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`, '--name', 'bench-relayed'], 60_000);
    if (!/relayed by the traffic-manager/.test(out)) throw new Error(`the restricted user's intercept is not relayed:\n${out}`);
    await firstAnswerFrom(base, 'workstation', 30_000);
    progress(`relayed round trips x${RUNS.requests}, and port-forward's`);
    const [viaRelay = [], viaForward = []] = await roundTrips([{ base }, { base: forward.url }], RUNS.requests);
    record('round trip via relayed intercept, p50 / p99', `${ms(percentile(viaRelay, 50))} / ${ms(percentile(viaRelay, 99))}`);
    record('round trip via port-forward, again, p50 / p99', `${ms(percentile(viaForward, 50))} / ${ms(percentile(viaForward, 99))}`);
    record('round-trip ratio p50 (relayed / port-forward)', (percentile(viaRelay, 50) / percentile(viaForward, 50)).toFixed(2));
    progress('relayed throughput, both directions (best of 3)');
    const up = await throughput('workstation -> cluster, relayed intercept', base, RUNS.bulkBytes, true);
    const upForward = await throughput('workstation -> cluster, port-forward again', forward.url, RUNS.bulkBytes, false);
    const down = await throughput('cluster -> workstation, relayed intercept', base, RUNS.bulkBytes, false);
    const downForward = await throughput('cluster -> workstation, port-forward again', forward.url, RUNS.bulkBytes, true);
    record('throughput workstation -> cluster, relayed / port-forward', `${up.toFixed(1)} / ${upForward.toFixed(1)} MB/s, ratio ${(up / upForward).toFixed(2)}`);
    record('throughput cluster -> workstation, relayed / port-forward', `${down.toFixed(1)} / ${downForward.toFixed(1)} MB/s, ratio ${(down / downForward).toFixed(2)}`);
    await dev.ok(['leave', 'bench-relayed']);
    await firstAnswerFrom(base, 'app', 30_000);
  } finally {
    await forward.stop();
    await dev.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The wiretap part (see the file's comment). */
async function wiretapFigures(cli: ReturnType<typeof createTelepresenceCli>, base: string, app: string): Promise<void> {
  const count = RUNS.requests;
  const tripsBoth = async (): Promise<{ keep: number[]; fresh: number[] }> => {
    const [keep = []] = await roundTrips([{ base }], count);
    return { keep, fresh: await freshTrips(base, Math.ceil(count / 2)) };
  };
  progress(`app round trips without a wiretap x${count} (keep-alive) and x${Math.ceil(count / 2)} (a connection each)`);
  const before = await tripsBoth();
  const tap = execFile(process.execPath, ['-e', TAP_SERVER]);
  const lines: string[] = [];
  tap.stdout?.setEncoding('utf8');
  tap.stdout?.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter((l) => l !== '')));
  const tapExited = new Promise<void>((ok) => tap.once('exit', () => ok()));
  try {
    const port = await eventually(() => {
      const line = lines.find((l) => l.startsWith('port '));
      if (line === undefined) throw new Error('the wiretap server has not started');
      return Number(line.slice(5));
    }, { timeoutMs: 10_000, intervalMs: 20, what: 'the wiretap server listening' });
    // Copies arrive a few milliseconds after their requests: the count is read until it holds still.
    const countNow = async (): Promise<number> => {
      lines.length = 0;
      tap.stdin?.write('count\n');
      return eventually(() => {
        const line = lines.find((l) => l.startsWith('seen '));
        if (line === undefined) throw new Error('no count yet');
        return Number(line.slice(5));
      }, { timeoutMs: 5000, intervalMs: 20, what: 'the wiretap server\'s count' });
    };
    // The floor: the same requests, each also sent by this process straight to the wiretap's
    // server on a connection of its own, as a copy makes it do, with nothing of ours in between.
    // What that costs the app's callers is the workstation's share of the machine, not the copy's.
    progress('app round trips, each request also sent straight to the local server (the floor)');
    const floor = await freshTrips(base, Math.ceil(count / 2), () => {
      void get(`http://127.0.0.1:${port}/ping`, false).catch(() => undefined);
    });
    let floorCount = await countNow();
    for (let again = await countNow(); again !== floorCount; again = await countNow()) floorCount = again;
    await cli.ok(['wiretap', app, '--mount=false', '--port', `${port}:http`, '--name', 'bench-tap'], 60_000);
    await eventually(async () => {
      await get(`${base}/ping`, false);
      if ((await countNow()) <= floorCount) throw new Error('no copy yet');
    }, { timeoutMs: 30_000, intervalMs: 100, what: 'a copy at the wiretap' });
    progress('app round trips with a wiretap attached');
    const tapped = await tripsBoth();
    let copied = await countNow();
    for (let again = await countNow(); again !== copied; again = await countNow()) copied = again;
    copied -= floorCount;
    tap.kill();
    await tapExited;
    progress('app round trips with the wiretap\'s process stopped');
    const stopped = await tripsBoth();
    await cli.ok(['leave', 'bench-tap']);
    progress('app round trips without a wiretap, again');
    const after = await tripsBoth();
    const p50 = (xs: readonly number[]): number => percentile(xs, 50);
    const mean2 = (a: number, b: number): number => (a + b) / 2;
    for (const kind of ['keep', 'fresh'] as const) {
      const label = kind === 'keep' ? 'keep-alive' : 'a connection each';
      const baseline = mean2(p50(before[kind]), p50(after[kind]));
      const withTap = p50(tapped[kind]);
      const withStopped = p50(stopped[kind]);
      record(`app round trip, ${label}, no wiretap (before / after), p50`, `${ms(p50(before[kind]))} / ${ms(p50(after[kind]))}`);
      record(`app round trip, ${label}, wiretap attached, p50 / p99`, `${ms(withTap)} / ${ms(percentile(tapped[kind], 99))}`);
      record(`wiretap ratio p50, ${label} (attached / none)`, (withTap / baseline).toFixed(3), '<= 1.05', withTap / baseline <= 1.05);
      record(`app round trip, ${label}, wiretap process stopped, p50`, ms(withStopped));
      record(`wiretap ratio p50, ${label} (process stopped / none)`, (withStopped / baseline).toFixed(3), '<= 1.05', withStopped / baseline <= 1.05);
    }
    const baselineFresh = mean2(p50(before.fresh), p50(after.fresh));
    record('app round trip, a connection each, each also sent straight to the local server (floor), p50', ms(p50(floor)));
    record('floor ratio p50, a connection each (floor / none)', (p50(floor) / baselineFresh).toFixed(3));
    record('wiretap ratio p50 over the floor, a connection each (attached / floor)', (p50(tapped.fresh) / p50(floor)).toFixed(3), '<= 1.05', p50(tapped.fresh) / p50(floor) <= 1.05);
    record('requests copied to the wiretap / sent while it was attached', `${copied} / ${count + 50 + Math.ceil(count / 2) + 20} and the probes that waited for its first copy`);
  } finally {
    tap.kill();
  }
}

async function main(): Promise<void> {
  const cluster = loadClusterEnv();
  const kube = createKube(cluster.kubeconfig);
  const repoRoot = findRepoRoot(process.cwd());
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const ns = `tp-bench-${randomBytes(3).toString('hex')}`;
  const cli = createTelepresenceCli({ repoRoot, kubeconfig: cluster.kubeconfig, namespace: ns });
  const routed = process.env['TP_BENCH_SKIP_ROUTED'] !== '1';

  progress('building and loading images');
  for (const image of ['echo', 'traffic-manager', 'agent-injector', 'traffic-agent']) {
    const ref = image === 'echo' ? ECHO_IMAGE : `tp-local/${image}:${version}`;
    await prepareImage({ repoRoot, imageDir: image, image: ref, kubeconfig: cluster.kubeconfig });
  }
  const managerWasInstalled = (await kube.kubectl(['get', 'namespaces', '-o', 'name'])).split('\n').includes(`namespace/${MANAGER_NS}`);

  const local: Server = createServer(handlerFor('workstation'));
  await new Promise<void>((ok) => local.listen(0, '127.0.0.1', ok));
  const localPort = (local.address() as AddressInfo).port;

  const app = 'bench';
  const podsOf = async (): Promise<Pod[]> =>
    (await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${app}`])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  const rolledOut = () => kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${app}`, '--timeout=180s'], { timeoutMs: 190_000 });

  const exec = async (command: string[]): Promise<string> => {
    const pod = (await podsOf())[0];
    if (pod === undefined) throw new Error(`no pod of ${app}`);
    return kube.kubectl(['-n', ns, 'exec', pod.metadata.name, '-c', 'traffic-agent', '--', ...command]);
  };
  /** A file of the agent's container, read by its node: the image has no `cat` or shell. */
  const readInAgent = (path: string): Promise<string> => exec(['node', '-e', 'process.stdout.write(require("fs").readFileSync(process.argv[1], "utf8"))', path]);
  const mb = (procStatus: string): string => `${(Number(/VmRSS:\s+(\d+)\s+kB/.exec(procStatus)?.[1] ?? NaN) / 1024).toFixed(1)} MB`;
  /**
   * VmRSS of the agent process (the container's pid 1), and its anonymous part: the heap and
   * stacks the agent itself allocated, without the runtime's mapped binary and libraries.
   */
  const agentMemory = async (name: string, limitMb?: number): Promise<void> => {
    const value = mb(await readInAgent('/proc/1/status'));
    const anon = /Anonymous:\s+(\d+)\s+kB/.exec(await readInAgent('/proc/1/smaps_rollup'))?.[1];
    // glibc's main heap (brk) apart from the rest (V8's pages, other arenas, stacks, mapped buffers).
    const smaps = await readInAgent('/proc/1/smaps');
    const brk = /\[heap\]\n(?:.*\n)*?Anonymous:\s+(\d+)\s+kB/.exec(smaps)?.[1];
    const detail = `${value} (anonymous ${(Number(anon ?? NaN) / 1024).toFixed(1)} MB, of it glibc's main heap ${(Number(brk ?? 0) / 1024).toFixed(1)} MB)`;
    if (limitMb !== undefined) record(name, detail, `<= ${limitMb} MB`, parseFloat(value) <= limitMb);
    else record(name, detail);
  };

  /** `kubectl port-forward` to the app's port in the workload's pod, answering when returned. */
  const forwardToApp = async (): Promise<{ url: string; stop: () => Promise<void> }> => {
    const pod = (await podsOf())[0];
    if (pod === undefined) throw new Error(`no pod of ${app}`);
    const forward = kube.start(['-n', ns, 'port-forward', `pod/${pod.metadata.name}`, `:${APP_PORT}`]);
    try {
      const m = await forward.waitForOutput(/Forwarding from 127\.0\.0\.1:(\d+)/, 30_000);
      const url = `http://127.0.0.1:${m[1] ?? ''}`;
      await firstAnswerFrom(url, 'app', 10_000);
      return { url, stop: () => forward.stop() };
    } catch (err: unknown) {
      await forward.stop();
      throw err;
    }
  };

  try {
    progress(`workload ${app} in namespace ${ns}`);
    await kube.apply([
      namespace(ns),
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: app, namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: 'app',
                  image: ECHO_IMAGE,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['node', '-e', APP_COMMAND],
                  ports: [{ name: 'http', containerPort: APP_PORT }],
                  readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: ns }, spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    ]);
    await rolledOut();
    const clusterIp = (await kube.kubectl(['-n', ns, 'get', 'service', app, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const base = `http://${clusterIp}:80`;
    if (routed) await firstAnswerFrom(base, 'app', 30_000);

    progress('installing the traffic-manager (if needed)');
    await cli.ok(['install'], 300_000);

    // connect: from no daemon at all to a session with the manager.
    if (want('connect')) {
      progress(`connect x${RUNS.connect}`);
      const connects: number[] = [];
      for (let i = 0; i < RUNS.connect; i++) {
        await cli.ok(['quit'], 30_000);
        const t0 = performance.now();
        await cli.ok(['connect'], 60_000);
        connects.push(performance.now() - t0);
      }
      record('connect (daemon start included), median', s(median(connects)), '<= 1 s', median(connects) <= 1000);
      record('connect, min/max', `${s(Math.min(...connects))} / ${s(Math.max(...connects))}`);
    } else {
      await cli.ok(['connect'], 60_000);
    }

    /** A global intercept of the workload to this process's server, answering when returned. */
    const interceptGlobal = async (): Promise<void> => {
      await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 300_000);
      if (routed) await firstAnswerFrom(base, 'workstation', 30_000);
    };
    const leaveGlobal = async (): Promise<void> => {
      await cli.ok(['leave', `${app}-${ns}`]);
      if (routed) await firstAnswerFrom(base, 'app', 30_000);
    };
    /** Whether the workload's pod carries the agent (the first intercept injects it). */
    let injected = false;
    const routedParts = (['cold', 'warm', 'trips', 'personal', 'relayed', 'concurrency'] as const).filter(want);
    if (!routed && routedParts.length > 0) {
      progress(`TP_BENCH_SKIP_ROUTED=1: skipping ${routedParts.join(', ')}, which send requests to the ClusterIP`);
    }

    if (routed && want('cold')) {
      // The bare restart of the same workload, the baseline of the cold intercept.
      progress(`bare rollout restart x${RUNS.cold}`);
      const restarts: number[] = [];
      const restartsAll: number[] = [];
      const restartReturns: number[] = [];
      for (let i = 0; i < RUNS.cold; i++) {
        const t0 = performance.now();
        // What `kubectl rollout restart` does, with a value of its own: that command refuses a
        // second restart within the same second, and a restart here can end within one.
        const restartedAt = { spec: { template: { metadata: { annotations: { 'bench.telepresence-ts.dev/restarted': `${Date.now()}-${i}` } } } } };
        await kube.kubectl(['-n', ns, 'patch', `deployment/${app}`, '--type', 'merge', '-p', JSON.stringify(restartedAt)]);
        await rolledOut();
        restartReturns.push(performance.now() - t0);
        // Until a new pod answers, as the cold intercept's figure ends when the workstation does:
        // both then include kube-proxy's taking up the new pod.
        const fresh = new Set((await podsOf()).map((p) => p.metadata.name));
        await eventually(async () => {
          const r = await get(`${base}/host`, false, PROBE_TIMEOUT_MS);
          if (!fresh.has(r.body)) throw new Error(`answered by ${r.body}`);
        }, { timeoutMs: 60_000, intervalMs: 10, what: 'a request answered by a restarted pod' });
        restarts.push(performance.now() - t0);
        // Then until old pods are out of kube-proxy's rules, which the cold intercept waits for.
        restartsAll.push((await onlyAnsweredBy(`${base}/host`, fresh)) - t0);
      }

      progress(`cold intercept x${RUNS.cold}`);
      const colds: number[] = [];
      const coldReturns: number[] = [];
      const removeAgent = async (): Promise<void> => {
        await cli.ok(['uninstall', '--agent', app], 300_000);
        await rolledOut();
        await eventually(
          async () => {
            const pods = await podsOf();
            if (pods.some((p) => (p.spec?.containers ?? []).some((c) => c.name === 'traffic-agent'))) throw new Error('a pod still carries the agent');
          },
          { timeoutMs: 120_000, intervalMs: 250, what: 'the agent removed' },
        );
      };
      for (let i = 0; i < RUNS.cold; i++) {
        const t0 = performance.now();
        await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 300_000);
        coldReturns.push(performance.now() - t0);
        colds.push((await firstAnswerFrom(base, 'workstation', 60_000)) - t0);
        await leaveGlobal();
        if (i < RUNS.cold - 1) await removeAgent();
      }
      injected = true;
      await agentMemory('traffic-agent idle RSS, fresh (a few requests served)', AGENT_IDLE_MB);
      const overhead = median(colds) - median(restartsAll);
      record('bare rollout restart, until only restarted pods answer, median', s(median(restartsAll)));
      record('bare rollout restart, until only restarted pods answer, each', restartsAll.map(s).join(' / '));
      record('bare rollout restart, until a restarted pod answers, each', restarts.map(s).join(' / '));
      record('bare rollout restart, until rollout status returned, each', restartReturns.map(s).join(' / '));
      record('cold intercept, median', s(median(colds)));
      record('cold intercept, each', colds.map(s).join(' / '));
      record('cold intercept, until the command returned, each', coldReturns.map(s).join(' / '));
      record('cold intercept overhead (cold - restart)', s(overhead), '<= 1 s', overhead <= 1000);

      if (want('pulled')) {
        progress('registry on this machine, images pushed to it, install --registry');
        const registryScript = join(repoRoot, 'test', 'cluster', 'registry.sh');
        const up = await script(registryScript, 'up');
        const path = `bench-${randomBytes(3).toString('hex')}`;
        const registry = `${/^REGISTRY=(.+)$/m.exec(up)?.[1] ?? ''}/${path}`;
        const pushTo = `${/^PUSH=(.+)$/m.exec(up)?.[1] ?? ''}/${path}`;
        const agentImage = `${registry}/traffic-agent:${version}`;
        const sideLoadedAgent = `tp-local/traffic-agent:${version}`;
        try {
          await script(join(repoRoot, 'scripts', 'push-images.sh'), '--registry', pushTo, '--base-image', 'tp-local/base-node:bookworm', '--no-build');
          await cli.ok(['install', '--registry', registry], 300_000);
          await cli.ok(['quit'], 30_000);
          await cli.ok(['connect'], 60_000);
          progress(`cold intercept, the agent image pulled, x${RUNS.cold}`);
          await removeAgent();
          const pulled: number[] = [];
          for (let i = 0; i < RUNS.cold; i++) {
            // The side-loaded agent image too: it holds the same layers, and a node of a
            // cluster that is not ours has neither.
            await script(registryScript, 'forget', agentImage, sideLoadedAgent);
            const t0 = performance.now();
            await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 300_000);
            pulled.push((await firstAnswerFrom(base, 'workstation', 60_000)) - t0);
            const images = await kube.kubectl(['-n', ns, 'get', 'pods', '-l', `app=${app}`, '-o', 'jsonpath={.items[*].status.containerStatuses[*].image}']);
            if (!images.split(' ').includes(agentImage)) throw new Error(`the agent does not run ${agentImage}: ${images}`);
            await leaveGlobal();
            await removeAgent();
          }
          record('cold intercept, agent image pulled from a registry, median', s(median(pulled)));
          record('cold intercept, agent image pulled from a registry, each', pulled.map(s).join(' / '));
          record('cost of the pull (pulled - side-loaded cold intercept)', s(median(pulled) - median(colds)));
          record('cold intercept overhead, agent image pulled (pulled - restart)', s(median(pulled) - median(restartsAll)));
        } finally {
          progress('the manager back on the side-loaded images');
          await cli.ok(['install'], 300_000);
          await cli.ok(['quit'], 30_000);
          await cli.ok(['connect'], 60_000);
          await script(registryScript, 'down');
          await prepareImage({ repoRoot, imageDir: 'traffic-agent', image: sideLoadedAgent, kubeconfig: cluster.kubeconfig });
        }
        // The side-loaded agent back in the workload, for the parts that follow.
        await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 300_000);
        await leaveGlobal();
      }
    }

    if (routed && want('evicted')) {
      // The same app with two replicas: its agent comes by eviction, one pod after the other,
      // against the same workload's bare rollout restart (maxSurge 1: also one pod at a time).
      const pair = `${app}-pair`;
      const pairObjects = (await kube.json<{ spec: object }>(['-n', ns, 'get', 'deployment', app])).spec as { replicas?: number; selector: object; template: { metadata: { labels: Record<string, string> } } };
      progress(`workload ${pair} (two replicas): bare rollout restart and cold intercept by eviction x${RUNS.cold}`);
      await kube.apply([
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: pair, namespace: ns },
          spec: { ...pairObjects, replicas: 2, selector: { matchLabels: { app: pair } }, template: { ...pairObjects.template, metadata: { labels: { app: pair } } } },
        },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: pair, namespace: ns }, spec: { selector: { app: pair }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
      ]);
      const pairRolledOut = () => kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${pair}`, '--timeout=180s'], { timeoutMs: 190_000 });
      const pairPods = async (): Promise<Pod[]> => (await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${pair}`])).items.filter((p) => p.metadata.deletionTimestamp === undefined);
      await pairRolledOut();
      const pairBase = `http://${(await kube.kubectl(['-n', ns, 'get', 'service', pair, '-o', 'jsonpath={.spec.clusterIP}'])).trim()}:80`;
      await firstAnswerFrom(pairBase, 'app', 30_000);
      const restarts: number[] = [];
      for (let i = 0; i < RUNS.cold; i++) {
        const t0 = performance.now();
        const restartedAt = { spec: { template: { metadata: { annotations: { 'bench.telepresence-ts.dev/restarted': `${Date.now()}-${i}` } } } } };
        await kube.kubectl(['-n', ns, 'patch', `deployment/${pair}`, '--type', 'merge', '-p', JSON.stringify(restartedAt)]);
        await pairRolledOut();
        const fresh = new Set((await pairPods()).map((p) => p.metadata.name));
        restarts.push((await onlyAnsweredBy(`${pairBase}/host`, fresh)) - t0);
      }
      const generation = (await kube.kubectl(['-n', ns, 'get', 'deployment', pair, '-o', 'jsonpath={.metadata.generation}'])).trim();
      const evicted: number[] = [];
      for (let i = 0; i < RUNS.cold; i++) {
        const t0 = performance.now();
        const out = await cli.run(['intercept', pair, '--mount=false', '--port', `${localPort}:http`], 300_000);
        if (out.exitCode !== 0 || !/evicted pod/.test(out.stderr)) throw new Error(`the intercept of ${pair} did not evict: ${out.stderr}`);
        evicted.push((await firstAnswerFrom(pairBase, 'workstation', 60_000)) - t0);
        await cli.ok(['leave', `${pair}-${ns}`]);
        await firstAnswerFrom(pairBase, 'app', 30_000);
        await cli.ok(['uninstall', '--agent', pair], 300_000);
        await eventually(
          async () => {
            const pods = await pairPods();
            if (pods.length !== 2 || pods.some((p) => (p.spec?.containers ?? []).some((c) => c.name === 'traffic-agent'))) throw new Error('a pod still carries the agent');
          },
          { timeoutMs: 120_000, intervalMs: 250, what: 'the agent removed' },
        );
      }
      const after = (await kube.kubectl(['-n', ns, 'get', 'deployment', pair, '-o', 'jsonpath={.metadata.generation}'])).trim();
      if (after !== generation) throw new Error(`the Deployment's generation moved from ${generation} to ${after}: it was changed`);
      const overhead = median(evicted) - median(restarts);
      record('two replicas: bare rollout restart, until only restarted pods answer, median', s(median(restarts)));
      record('two replicas: cold intercept by eviction (Deployment unchanged), median', s(median(evicted)));
      record('two replicas: cold intercept by eviction, each', evicted.map(s).join(' / '));
      record('two replicas: cold intercept overhead by eviction (cold - restart)', s(overhead), '<= 1 s', overhead <= 1000);
      await kube.kubectl(['-n', ns, 'delete', 'deployment,service', pair, '--wait=true'], { timeoutMs: 120_000 });
    }

    if (!injected && want('memory')) {
      // The agent as it starts: injected by one intercept, left at once, no request served.
      await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 300_000);
      await cli.ok(['leave', `${app}-${ns}`]);
      injected = true;
      await agentMemory('traffic-agent idle RSS, fresh', AGENT_IDLE_MB);
    }

    if (routed && want('warm')) {
      progress(`warm intercept x${RUNS.warm}`);
      const warms: number[] = [];
      for (let i = 0; i < RUNS.warm; i++) {
        const t0 = performance.now();
        await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`], 60_000);
        warms.push((await firstAnswerFrom(base, 'workstation', 30_000)) - t0);
        await leaveGlobal();
      }
      injected = true;
      record('warm intercept, median', s(median(warms)), '<= 0.5 s', median(warms) <= 500);
      record('warm intercept, min/max', `${s(Math.min(...warms))} / ${s(Math.max(...warms))}`);
    }

    if (routed && want('trips')) {
      await interceptGlobal();
      injected = true;
      // Intercepted now. The same pod's app over kubectl port-forward is the comparison.
      const forward = await forwardToApp();
      try {
        const forwarded = forward.url;

        progress(`round trips x${RUNS.requests} each way`);
        const [viaIntercept = [], viaForward = []] = await roundTrips([{ base }, { base: forwarded }], RUNS.requests);
        const p50 = percentile(viaIntercept, 50) / percentile(viaForward, 50);
        const p99 = percentile(viaIntercept, 99) / percentile(viaForward, 99);
        record('round trip via intercept, p50 / p99', `${ms(percentile(viaIntercept, 50))} / ${ms(percentile(viaIntercept, 99))}`);
        record('round trip via port-forward, p50 / p99', `${ms(percentile(viaForward, 50))} / ${ms(percentile(viaForward, 99))}`);
        record('round-trip ratio p50 (intercept / port-forward)', p50.toFixed(2), '<= 1.1', p50 <= 1.1);
        record('round-trip ratio p99 (intercept / port-forward)', p99.toFixed(2), '<= 1.3', p99 <= 1.3);

        // Both directions, each compared with port-forward carrying the bytes the same way: an
        // intercepted download (the cluster GETs from the workstation) moves data workstation ->
        // cluster, as a POST over port-forward does.
        const mb = RUNS.bulkBytes / 1024 / 1024;
        progress(`throughput, ${mb} MB per transfer, both directions (best of 3)`);
        const upIntercept = await throughput('workstation -> cluster, intercept', base, RUNS.bulkBytes, true);
        const upForward = await throughput('workstation -> cluster, port-forward', forwarded, RUNS.bulkBytes, false);
        const downIntercept = await throughput('cluster -> workstation, intercept', base, RUNS.bulkBytes, false);
        const downForward = await throughput('cluster -> workstation, port-forward', forwarded, RUNS.bulkBytes, true);
        record('throughput workstation -> cluster, intercept', `${upIntercept.toFixed(1)} MB/s`);
        record('throughput workstation -> cluster, port-forward', `${upForward.toFixed(1)} MB/s`);
        record('throughput ratio workstation -> cluster', (upIntercept / upForward).toFixed(2), '>= 0.9', upIntercept / upForward >= 0.9);
        record('throughput cluster -> workstation, intercept', `${downIntercept.toFixed(1)} MB/s`);
        record('throughput cluster -> workstation, port-forward', `${downForward.toFixed(1)} MB/s`);
        record('throughput ratio cluster -> workstation', (downIntercept / downForward).toFixed(2), '>= 0.9', downIntercept / downForward >= 0.9);
      } finally {
        await forward.stop();
      }
      await leaveGlobal();
    }

    if (routed && want('personal')) {
      // The global intercept's round trips again, right before the personal ones: the transfers
      // above change the machine's state, and the two are compared with each other.
      await interceptGlobal();
      injected = true;
      progress(`global intercept round trips x${RUNS.requests}, again`);
      const [viaGlobal = []] = await roundTrips([{ base }], RUNS.requests);
      await leaveGlobal();

      // The same round trip through a personal intercept: the agent now parses each request and
      // routes it by its header (docs/personal-intercepts.md), where a global one only splices.
      const mine = { 'x-bench': 'personal' };
      await cli.ok(['intercept', app, '--mount=false', '--port', `${localPort}:http`, '--name', 'bench-personal', '--http-header', 'x-bench=personal'], 60_000);
      await firstAnswerFrom(base, 'workstation', 30_000, mine);
      progress(`personal intercept round trips x${RUNS.requests}, with and without the header`);
      const [viaPersonal = [], viaRouterToApp = []] = await roundTrips([{ base, headers: mine }, { base }], RUNS.requests);
      const ratio = percentile(viaPersonal, 50) / percentile(viaGlobal, 50);
      record('round trip via personal intercept, p50 / p99', `${ms(percentile(viaPersonal, 50))} / ${ms(percentile(viaPersonal, 99))}`);
      record('round trip via global intercept just before, p50 / p99', `${ms(percentile(viaGlobal, 50))} / ${ms(percentile(viaGlobal, 99))}`);
      record('round-trip ratio p50 (personal / global)', ratio.toFixed(2), '<= 1.2', ratio <= 1.2);
      record('round trip to the app beside a personal intercept, p50 / p99', `${ms(percentile(viaRouterToApp, 50))} / ${ms(percentile(viaRouterToApp, 99))}`);
      await cli.ok(['leave', 'bench-personal']);
      await firstAnswerFrom(base, 'app', 30_000, mine);
    }

    if (routed && want('wiretap')) {
      if (!injected) {
        await interceptGlobal();
        await leaveGlobal();
        injected = true;
      }
      await wiretapFigures(cli, base, app);
    }

    if (routed && want('relayed')) {
      if (!injected) {
        await interceptGlobal();
        await leaveGlobal();
        injected = true;
      }
      await relayedFigures(kube, ns, base, forwardToApp, (dir) => createTelepresenceCli({ repoRoot, kubeconfig: join(dir, 'restricted.kubeconfig'), namespace: ns }), app, localPort);
    }

    if (routed && want('concurrency')) {
      if (!injected) {
        // The app's own rate is measured through the agent's passthrough, as it is beside intercepts.
        await interceptGlobal();
        await leaveGlobal();
        injected = true;
      }
      await concurrencyFigures(cli, base, app, ns, localPort, forwardToApp);
    }

    if (want('memory')) {
      // The agent's memory once idle after traffic: what went through it above (the throughput
      // figures move 1.5 GB through the intercept), or without them TP_BENCH_MEMORY_MB more
      // through an intercept, half each way.
      if (routed && !want('trips')) {
        progress(`${RUNS.memoryMb} MB through an intercept, half each way, in ${RUNS.bulkBytes / 1024 / 1024} MB transfers`);
        await interceptGlobal();
        let left = RUNS.memoryMb * 1024 * 1024;
        for (let i = 0; left > 0; i++) {
          const n = Math.min(left, RUNS.bulkBytes);
          await moveOnce(base, n, i % 2 === 0);
          left -= n;
        }
        await leaveGlobal();
      }
      if (routed) {
        await agentMemory('traffic-agent idle RSS, right after the traffic above');
        // glibc and V8 give memory back on their own time (a trim at the next free, V8's idle
        // collections); what the agent holds a little later is what it keeps.
        await new Promise((ok) => setTimeout(ok, 10_000));
        await agentMemory('traffic-agent idle RSS, 10 s after the traffic above', AGENT_AFTER_TRAFFIC_MB);
      }
      // The floor: a bare `node` started in the same container, for what the runtime alone takes.
      const floor = await exec(['node', '-e', "setTimeout(() => console.log(require('fs').readFileSync('/proc/self/status', 'utf8')), 500)"]);
      record('bare node in the agent image (runtime floor), RSS', mb(floor));
    }
  } finally {
    progress('cleaning up');
    await cli.dispose();
    await new Promise<void>((ok) => local.close(() => ok()));
    await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
    if (!managerWasInstalled) {
      await kube.kubectl(['delete', 'mutatingwebhookconfigurations', '-l', 'app.kubernetes.io/managed-by=telepresence-ts', '--ignore-not-found']);
      await kube.kubectl(['delete', 'namespace', MANAGER_NS, '--ignore-not-found', '--wait=true'], { timeoutMs: 180_000 });
      await kube.kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', 'app.kubernetes.io/managed-by=telepresence-ts', '--ignore-not-found']);
    }
  }

  const width = Math.max(...figures.map((f) => f.name.length));
  process.stdout.write(`\nintercept benchmark (${new Date().toISOString().slice(0, 10)}, Kubernetes at ${cluster.kubeconfig})\n`);
  for (const f of figures) {
    const verdict = f.met === undefined ? '' : f.met ? '  met' : '  MISSED';
    process.stdout.write(`${f.name.padEnd(width)}  ${f.value.padEnd(30)}${f.target !== '' ? `  target ${f.target}` : ''}${verdict}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`intercept benchmark failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
