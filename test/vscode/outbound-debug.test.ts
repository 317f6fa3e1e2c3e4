/**
 * Outbound access from VS Code: connect from the welcome view with `telepresence.outbound` on, see
 * the status bar say that the cluster is reachable (and what is routed), then run a program under
 * the debugger that calls a cluster Service by name, stop at a breakpoint after the answer came,
 * and check what it got. Disconnect takes the device, routes and DNS redirect down again.
 *
 * The workstation side runs in a network namespace of its own (test/src/workstation-netns.ts) that
 * reaches only the API server: code-server, hence the extension host, the daemon the extension
 * starts, the network daemon and the debuggee. This machine is the cluster's node, so from its own
 * namespace every pod and service address answers anyway (and outbound access is refused there
 * for the subnet conflict); inside the workstation namespace, `orders.<ns>` resolves and answers
 * only if the product carried it. Chromium stays in the root namespace and browses code-server on
 * the namespace's end of the veth pair.
 *
 * The .vsix ships the user daemon but not the network daemon, which is the CLI's `network-daemon`
 * verb with the packet engine beside it: the extension's daemon finds the CLI on PATH, as kubectl
 * finds the plugin. code-server gets the build's dist/bin on PATH, and everything here runs as
 * root, so the extension's daemon starts the network daemon itself (a user who is not root
 * starts it once with sudo).
 *
 * Needs the test cluster (`npm run cluster:up`), code-server (`bash scripts/install-code-server.sh`)
 * and the .vsix and CLI build (`bash scripts/package-vsix.sh`). It installs (or updates) the
 * traffic-manager and leaves it installed. Screenshots, VS Code's logs, the daemon's and network
 * daemon's logs land in test/vscode/artifacts/outbound-debug/, replaced on every run. The
 * workstation namespace, its veth and the suite's Kubernetes namespace are removed at the end.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareSuiteImages } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import type { List, Pod } from '../src/k8s-objects.js';
import { createKube } from '../src/kube.js';
import { clusterIpService, echoDeployment, namespace } from '../src/manifests.js';
import { processRunner, type ProcessRunner, type RunResult } from '../src/process-runner.js';
import { createWorkstationNetns, type WorkstationNetns } from '../src/workstation-netns.js';
import { launchBrowser, type Browser } from './src/browser.js';
import { installExtension, makeCodeServerDirs, removeCodeServerDirs, startCodeServer, type CodeServer, type CodeServerDirs } from './src/code-server.js';
import { Workbench, workbenchSteps } from './src/workbench.js';

t.setTimeout(20 * 60_000);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VSIX = process.env['TP_VSIX'] ?? join(ROOT, 'dist', 'telepresence-ts.vsix');
const ARTIFACTS = join(ROOT, 'test', 'vscode', 'artifacts', 'outbound-debug');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const MANAGER_NS = 'tp-system';
const MANAGER_PODS = 'app.kubernetes.io/name=traffic-manager';

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const ns = `vscode-out-${randomBytes(3).toString('hex')}`;
/** The Service the debuggee calls: the echo server, which answers with its pod's name. */
const SERVICE = 'orders';
/** What the debuggee writes its answers to, in the workspace. */
const RESULT_FILE = 'answers.json';
/** The line of call-service.js the breakpoint goes on (1-based): after every answer came. */
const BREAKPOINT_LINE = 17;

// Connecting brings the session up, then the device, routes and DNS redirect: seconds, with
// headroom for the shared 2-core machine.
const CONNECT_TIMEOUT_MS = 120_000;
// Everything the status bar shows follows a daemon snapshot: seconds, with headroom.
const STATUS_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Fixtures

/**
 * The program the user debugs: GETs each URL of its arguments, in turn, and writes what came back
 * (or why nothing did) to answers.json beside it. The breakpoint line is the write.
 */
function callServiceJs(): string {
  const lines = [
    "const { writeFileSync } = require('node:fs');",
    "const { join } = require('node:path');",
    '',
    'async function call(url) {',
    '  try {',
    '    const res = await fetch(url, { signal: AbortSignal.timeout(30000) });',
    '    return { status: res.status, body: await res.text() };',
    '  } catch (err) {',
    '    return { error: String(err.cause?.message ?? err.message) };',
    '  }',
    '}',
    '',
    'async function main() {',
    '  const answers = {};',
    '  for (const url of process.argv.slice(2)) answers[url] = await call(url);',
    '  const text = JSON.stringify(answers, null, 2);',
    `  writeFileSync(join(__dirname, '${RESULT_FILE}'), text);`,
    '}',
    '',
    'main();',
    '',
  ];
  if (!lines[BREAKPOINT_LINE - 1]?.includes('writeFileSync(')) throw new Error('BREAKPOINT_LINE must name the line that writes the answers');
  return lines.join('\n');
}

/** The URLs the debuggee calls: the Service as `name.namespace`, and by its short name. */
const urls = (): string[] => [`http://${SERVICE}.${ns}/`, `http://${SERVICE}/`];

/** A plain Node launch configuration: no `telepresence` object, it just runs while connected. */
function launchJson(): string {
  const config = {
    version: '0.2.0',
    configurations: [
      {
        type: 'node',
        request: 'launch',
        name: 'Call the Service',
        program: '${workspaceFolder}/call-service.js',
        args: urls(),
        console: 'internalConsole',
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Helpers

let ws: WorkstationNetns | undefined;

function netns(): WorkstationNetns {
  if (ws === undefined) throw new Error('the workstation namespace was not built (see the set-up failure above)');
  return ws;
}

/** `kubectl telepresence <args>` inside the workstation namespace, with its daemon's folders. */
async function tp(args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return netns().run(['kubectl', 'telepresence', ...args], { timeoutMs });
}

async function tpOk(args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await tp(args, timeoutMs);
  if (r.exitCode !== 0 || r.timedOut) {
    throw new Error(`kubectl telepresence ${args.join(' ')} exited ${String(r.exitCode)}:\n${r.stdout}${r.stderr}\n--- daemon log (end) ---\n${netns().daemonLog().slice(-3000)}`);
  }
  return r.stdout;
}

interface OutboundJson {
  state: string;
  device: string;
  routed: string[];
  dnsDomains: string[];
  tcpFlows: number;
  dnsClusterQueries: number;
  error?: string;
}

/** What `kubectl telepresence status` in the namespace says of outbound access (the extension's daemon). */
async function outboundStatus(): Promise<OutboundJson | undefined> {
  const s = JSON.parse(await tpOk(['status', '--output', 'json'], 30_000)) as { connection?: { outbound?: OutboundJson } };
  return s.connection?.outbound;
}

/** The manager runs the image just built: an older one would lack outbound access altogether. */
async function ensureFreshManager(): Promise<void> {
  const ref = `tp-local/traffic-manager:${VERSION}`;
  const inspect = await processRunner.run('docker', ['image', 'inspect', '--format', '{{.Id}}', ref], { timeoutMs: 30_000 });
  const built = inspect.stdout.trim().replace(/^sha256:/, '');
  const pods = await kube.json<List<Pod & { status?: { containerStatuses?: Array<{ imageID?: string }> } }>>(['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_PODS]);
  const running = pods.items.flatMap((p) => (p.status?.containerStatuses ?? []).map((c) => c.imageID ?? ''));
  if (built !== '' && running.length > 0 && running.every((id) => id.endsWith(built))) return;
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'restart', 'deployment/traffic-manager']);
  await kube.kubectl(['-n', MANAGER_NS, 'rollout', 'status', 'deployment/traffic-manager', '--timeout=180s'], { timeoutMs: 190_000 });
}

/** Starts processes inside the workstation namespace: how code-server gets there. */
function runnerInside(w: WorkstationNetns): ProcessRunner {
  return {
    run: (command, args, options) => w.run([command, ...args], { env: options?.env ?? w.env, ...(options?.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) }),
    start: (command, args, options) => w.spawn([command, ...args], { env: options?.env ?? w.env }),
  };
}

/** The network daemon's log: root's cache folder, whatever XDG_CACHE_HOME says (see core's network paths). */
const NETWORK_DAEMON_LOG = join(homedir(), '.cache', 'telepresence-ts', 'network-daemon.log');

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

let dirs: CodeServerDirs | undefined;
let server: CodeServer | undefined;
let browser: Browser | undefined;
let workbench: Workbench | undefined;
let ordersPod = '';
let networkLogStart = 0;

const { step } = workbenchSteps(() => workbench);

t.before(async () => {
  if (!existsSync(VSIX)) throw new Error(`${VSIX} is missing; run: bash scripts/package-vsix.sh`);
  await rm(ARTIFACTS, { recursive: true, force: true });
  await mkdir(ARTIFACTS, { recursive: true });

  await prepareSuiteImages(ROOT, cluster.kubeconfig);
  await kube.apply([namespace(ns), echoDeployment(ns, SERVICE, 1), clusterIpService(ns, SERVICE, 80)]);

  const w = await createWorkstationNetns({ repoRoot: ROOT, kubeconfig: cluster.kubeconfig });
  ws = w;
  t.comment(`workstation namespace ${w.name}: ${w.subnet.nsAddress} on ${w.subnet.cidr}, reaching only ${w.apiServer}`);
  // Installing (or updating: the manager's role gains what outbound access needs) takes only
  // the API server, so it is done from the workstation like everything else.
  await tpOk(['install'], 300_000);
  await ensureFreshManager();
  await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${SERVICE}`, '--timeout=180s'], { timeoutMs: 190_000 });
  const pods = await kube.json<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `app=${SERVICE}`]);
  ordersPod = pods.items.find((p) => p.metadata.deletionTimestamp === undefined)?.metadata.name ?? '';
  if (ordersPod === '') throw new Error(`no pod of ${SERVICE} in ${ns}`);

  networkLogStart = await readFile(NETWORK_DAEMON_LOG, 'utf8').then((s) => s.length, () => 0);

  dirs = await makeCodeServerDirs({
    settings: {
      'telepresence.namespace': ns,
      'telepresence.kubeconfig': cluster.kubeconfig,
      // The default, spelled out: this suite is about it.
      'telepresence.outbound': true,
    },
    workspaceFiles: { 'call-service.js': callServiceJs(), '.vscode/launch.json': launchJson() },
  });
  await installExtension(dirs, VSIX);
  // The namespace's daemon folders and network socket.
  const env: Record<string, string> = {};
  for (const key of ['KUBECONFIG', 'XDG_RUNTIME_DIR', 'XDG_CACHE_HOME', 'TELEPRESENCE_NETWORK_SOCKET']) env[key] = String(w.env[key]);
  // The CLI on PATH as a user has it: VS Code gives the extension host the PATH of a login shell
  // (it runs `$SHELL -il` to read it), so a HOME of the test's own whose profile adds dist/bin.
  const home = join(dirs.root, 'home');
  await mkdir(home, { recursive: true });
  const profile = `export PATH=${JSON.stringify(join(ROOT, 'dist', 'bin'))}:"$PATH"\n`;
  for (const file of ['.profile', '.bash_profile']) await writeFile(join(home, file), profile);
  Object.assign(env, { HOME: home, SHELL: '/bin/bash' });
  // Inside the namespace, on its end of the veth: the browser in the root namespace reaches it there.
  server = await startCodeServer(dirs, { env, host: w.subnet.nsAddress, runner: runnerInside(w) });
  t.comment(`code-server in ${w.name} at ${server.url}`);
  browser = await launchBrowser();
  const wb = new Workbench(browser.page, { artifactsDir: ARTIFACTS });
  try {
    await wb.open(server.workbenchUrl);
  } catch (err) {
    await wb.screenshot('FAILED-open').catch(() => undefined);
    throw err;
  }
  workbench = wb;
});

t.teardown(async () => {
  await browser?.close();
  if (ws !== undefined) {
    await writeFile(join(ARTIFACTS, 'daemon.log'), ws.daemonLog()).catch(() => undefined);
    // The daemon the extension started departs from the manager and stops the network daemon it
    // started; `--stop` is for a run that failed half-way.
    await tp(['quit'], 30_000).catch(() => undefined);
    await tp(['network-daemon', '--stop'], 30_000).catch(() => undefined);
  }
  const networkLog = await readFile(NETWORK_DAEMON_LOG, 'utf8').catch(() => '');
  await writeFile(join(ARTIFACTS, 'network-daemon.log'), networkLog.slice(networkLogStart)).catch(() => undefined);
  await server?.stop();
  if (server) await writeFile(join(ARTIFACTS, 'code-server.log'), server.output());
  if (dirs) await cp(join(dirs.userDataDir, 'logs'), join(ARTIFACTS, 'vscode-logs'), { recursive: true }).catch(() => undefined);
  if (dirs) await removeCodeServerDirs(dirs);
  // Stops whatever still runs inside, removes the namespace, its veth and folders, and checks.
  await ws?.destroy();
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
});

// ---------------------------------------------------------------------------------------------
// Connected, with outbound access

t.test('Connect from the welcome view brings outbound access up; the status bar says what is routed', async (t) => {
  await step('connect', async (wb) => {
    await wb.openViewContainer('Telepresence');
    const body = await wb.expandView('Workloads');
    const button = wb.welcomeButton(body, 'Connect');
    await button.waitFor({ state: 'visible', timeout: 60_000 });
    await button.click();

    const status = wb.page.locator('.part.statusbar [aria-label^="Telepresence: connected"]').first();
    await status.waitFor({ state: 'attached', timeout: CONNECT_TIMEOUT_MS }).catch(async (err: unknown) => {
      // A refused connect is a notification: say what it said rather than "timed out".
      const toasts = await wb.page.locator('.notifications-toasts .notification-toast').allInnerTexts();
      throw new Error(`not connected within ${CONNECT_TIMEOUT_MS} ms; notifications: ${JSON.stringify(toasts)}`, { cause: err });
    });
    const outbound = await outboundStatus();
    t.equal(outbound?.state, 'up', `the daemon reports outbound access up${outbound?.error !== undefined ? ` (${outbound.error})` : ''}`);
    t.match(outbound?.device, /^tpts\d+$/, 'on a device of its own');

    const label = (await status.getAttribute('aria-label')) ?? '';
    t.match(label, new RegExp(`^Telepresence: connected to .*; 0 intercepts\\nOutbound access: .* routed into ${outbound?.device ?? 'tpts'}`), 'the tooltip says outbound access is up');
    for (const cidr of outbound?.routed ?? []) t.ok(label.includes(cidr), `and names the routed subnet ${cidr}`);
    t.match(label, new RegExp(`\\nCluster DNS: names in .*${ns.replace(/-/g, '\\-')}`), 'and the DNS domains, the connected namespace among them');
    t.equal(await status.locator('.codicon-globe').count(), 1, 'the status bar item shows the globe');
    await wb.screenshot('connected-with-outbound');
    // The tooltip, for the artifacts' reader: what is routed, the DNS domains.
    await status.hover();
    const hover = wb.page.locator('.monaco-hover, .workbench-hover').filter({ hasText: 'Outbound access' }).first();
    await hover.waitFor({ state: 'visible', timeout: 20_000 });
    t.match(await hover.innerText(), /routed into tpts\d+/, 'hovering shows the tooltip');
    await wb.screenshot('status-bar-tooltip');
    await wb.page.mouse.move(0, 0);
  });
});

t.test("A VS Code debug session's process reaches a cluster Service", async (t) => {
  await step('debug', async (wb) => {
    const before = await outboundStatus();
    await wb.openFile('call-service.js');
    await wb.goToLine(BREAKPOINT_LINE);
    await wb.runCommand('Debug: Toggle Breakpoint');
    await wb.breakpointGlyphs().first().waitFor({ state: 'visible', timeout: 20_000 });
    await wb.runCommand('Debug: Select and Start Debugging', { opensPicker: true });
    await wb.pickQuick('Call the Service');

    // The fetches time out after 30 s each; the pause follows them.
    const paused = wb.callStackStates().filter({ hasText: /paused on breakpoint/i }).first();
    await paused.waitFor({ state: 'visible', timeout: 90_000 });
    t.equal(await wb.topFrameLine(), BREAKPOINT_LINE, 'the debugger paused after the calls, before the answers are written');
    await wb.screenshot('paused-after-the-calls');
    await wb.runCommand('Debug: Continue');

    if (dirs === undefined) throw new Error('no workspace');
    const resultPath = join(dirs.workspaceDir, RESULT_FILE);
    const text = await eventually(() => readFile(resultPath, 'utf8'), { timeoutMs: 30_000, intervalMs: 250, what: `the debuggee writing ${RESULT_FILE}` });
    const answers = JSON.parse(text) as Record<string, { status?: number; body?: string; error?: string }>;
    for (const url of urls()) {
      const a = answers[url];
      t.equal(a?.status, 200, `${url}: answered (${a?.error ?? `status ${String(a?.status)}`})`);
      const host = a?.body !== undefined ? ((JSON.parse(a.body) as { host?: string }).host ?? '') : '';
      t.equal(host, ordersPod, `${url}: by the Service's pod`);
    }

    const after = await outboundStatus();
    t.ok((after?.tcpFlows ?? 0) > (before?.tcpFlows ?? 0), `through the product's device: TCP flows ${before?.tcpFlows ?? '?'} -> ${after?.tcpFlows ?? '?'}`);
    t.ok((after?.dnsClusterQueries ?? 0) > (before?.dnsClusterQueries ?? 0), `and its resolver: cluster DNS answers ${before?.dnsClusterQueries ?? '?'} -> ${after?.dnsClusterQueries ?? '?'}`);
    await wb.screenshot('answers');
  });
});

// ---------------------------------------------------------------------------------------------
// Disconnected

t.test('Disconnect takes the device, routes and DNS redirect down', async (t) => {
  await step('disconnect', async (wb) => {
    await wb.runCommand('Telepresence: Disconnect');
    const status = wb.page.locator('.part.statusbar [aria-label^="Telepresence: not connected"]').first();
    await status.waitFor({ state: 'attached', timeout: STATUS_TIMEOUT_MS });
    t.equal(await wb.page.locator('.part.statusbar .codicon-globe').count(), 0, 'no globe in the status bar');
    // Processes (code-server, the idle network daemon) and sockets are the suite's own.
    await eventually(
      async () => {
        const left = await netns().leftovers(['processes', 'sockets']);
        if (left.length > 0) throw new Error(`still there:\n  ${left.join('\n  ')}`);
      },
      { timeoutMs: STATUS_TIMEOUT_MS, intervalMs: 500, what: 'the workstation namespace back to how it was built' },
    );
    t.pass('links, routes, rules, iptables and resolv.conf are as before connect');
    await wb.screenshot('disconnected');
  });
});
