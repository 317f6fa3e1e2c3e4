/**
 * The extension on the real cluster, in a real VS Code: connect from the welcome view, see the
 * cluster's workloads in the tree, intercept one by right-click, see an intercept made with the
 * CLI appear too (the two share one daemon), debug a launch configuration with the intercept, send
 * a request from a pod and see the debugger stop at a breakpoint set in the editor's margin.
 *
 * Needs the test cluster (`npm run cluster:up`), code-server (`bash scripts/install-code-server.sh`)
 * and the .vsix (`bash scripts/package-vsix.sh`, which also builds the CLI and the cluster
 * programs). The traffic-manager is installed when the cluster has none; it is left installed
 * (other suites share it, and the harness's teardown removes the cluster). The suite's own
 * namespace is deleted at the end. Screenshots of every step, VS Code's logs (with the
 * extension's output channel) and the daemon's log land in test/vscode/artifacts/intercept-debug/,
 * replaced on every run.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareImage } from '../src/cluster-images.js';
import { loadClusterEnv } from '../src/cluster-env.js';
import { eventually } from '../src/eventually.js';
import { createKube } from '../src/kube.js';
import { ECHO_IMAGE, namespace } from '../src/manifests.js';
import { createTelepresenceCli, type TelepresenceCli } from '../src/telepresence-cli.js';
import { launchBrowser, type Browser } from './src/browser.js';
import { installExtension, makeCodeServerDirs, removeCodeServerDirs, startCodeServer, type CodeServer, type CodeServerDirs } from './src/code-server.js';
import { Workbench, workbenchSteps } from './src/workbench.js';

t.setTimeout(20 * 60_000);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VSIX = process.env['TP_VSIX'] ?? join(ROOT, 'dist', 'telepresence-ts.vsix');
const ARTIFACTS = join(ROOT, 'test', 'vscode', 'artifacts', 'intercept-debug');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const MANAGER_NS = 'tp-system';

const cluster = loadClusterEnv();
const kube = createKube(cluster.kubeconfig);
const ns = `vscode-e2e-${randomBytes(3).toString('hex')}`;
const cli: TelepresenceCli = createTelepresenceCli({ repoRoot: ROOT, kubeconfig: cluster.kubeconfig, namespace: ns });

/** What the workload's pods declare; the debuggee must see it through the intercept. */
const GREETING = 'hello from the cluster';
/** The line of server.js the breakpoint goes on (1-based): where a request is handled. */
const BREAKPOINT_LINE = 5;

// An intercept reaches the agent only after the workload rolled out with it: up to a few minutes
// on the shared 2-core machine.
const INTERCEPT_TIMEOUT_MS = 240_000;
// Everything the tree shows follows a watch event or a daemon snapshot: seconds, with headroom.
const TREE_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Fixtures

function app(name: string, env: Record<string, string>): object[] {
  const labels = { app: name };
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'echo',
                image: ECHO_IMAGE,
                imagePullPolicy: 'IfNotPresent',
                ports: [{ name: 'http', containerPort: 8080 }],
                env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
                readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  ];
}

const clientPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'client', namespace: ns },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'client', image: ECHO_IMAGE, imagePullPolicy: 'IfNotPresent' }] },
};

/** The local handler the user debugs: answers with what it saw of the intercepted environment. */
function serverJs(): string {
  return [
    "const http = require('node:http');",
    'const port = Number(process.env.PORT);',
    'http',
    '  .createServer((req, res) => {',
    "    const answer = { handledBy: 'workstation', greeting: process.env.GREETING ?? null, intercept: process.env.TELEPRESENCE_INTERCEPT_ID ?? null };",
    "    res.setHeader('content-type', 'application/json');",
    '    res.end(JSON.stringify(answer));',
    '  })',
    "  .listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));",
    '',
  ].join('\n');
}

function launchJson(localPort: number): string {
  const config = {
    version: '0.2.0',
    configurations: [
      {
        type: 'node',
        request: 'launch',
        name: 'Run server',
        program: '${workspaceFolder}/server.js',
        env: { PORT: String(localPort) },
        telepresence: { workload: 'web', namespace: ns, localPort },
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** A TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Resolves when something accepts connections on 127.0.0.1:port; rejects otherwise. */
function accepts(port: number): Promise<void> {
  return new Promise((ok, fail) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 2_000 });
    socket.once('connect', () => {
      socket.destroy();
      ok();
    });
    socket.once('timeout', () => {
      socket.destroy();
      fail(new Error(`127.0.0.1:${port} timed out`));
    });
    socket.once('error', fail);
  });
}

/** GETs a URL from the client pod (with `headers`), waiting as long as a paused debugger may hold the answer. */
async function getFromPod(url: string, headers: Record<string, string> = {}): Promise<string> {
  const script = `fetch(process.argv[1], { headers: JSON.parse(process.argv[2]), signal: AbortSignal.timeout(150000) })
    .then((r) => r.text()).then((b) => console.log(b))
    .catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });`;
  return (await kube.kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, url, JSON.stringify(headers)], { timeoutMs: 160_000 })).trim();
}

interface ListedWorkload {
  name: string;
  intercepts?: Array<{ name?: string }>;
}
async function cliInterceptsOf(workload: string): Promise<string[]> {
  const out = await cli.json<{ workloads?: ListedWorkload[] } | ListedWorkload[]>(['list']);
  const rows = Array.isArray(out) ? out : (out.workloads ?? []);
  return (rows.find((w) => w.name === workload)?.intercepts ?? []).map((ii) => ii.name ?? '');
}

// ---------------------------------------------------------------------------------------------
// Set-up and tear-down

let dirs: CodeServerDirs | undefined;
let server: CodeServer | undefined;
let browser: Browser | undefined;
let workbench: Workbench | undefined;
let localPort = 0;
let cliPort = 0;

const { step } = workbenchSteps(() => workbench);

async function managerInstalled(): Promise<boolean> {
  const out = await kube.kubectl(['-n', MANAGER_NS, 'get', 'deployments', '--ignore-not-found', '-o', 'name']);
  return out.includes('deployment.apps/traffic-manager');
}

t.before(async () => {
  if (!existsSync(VSIX)) throw new Error(`${VSIX} is missing; run: bash scripts/package-vsix.sh`);
  await rm(ARTIFACTS, { recursive: true, force: true });
  await mkdir(ARTIFACTS, { recursive: true });

  await prepareImage({ repoRoot: ROOT, imageDir: 'echo', image: ECHO_IMAGE, kubeconfig: cluster.kubeconfig });
  if (!(await managerInstalled())) {
    for (const image of ['traffic-manager', 'agent-injector', 'traffic-agent']) {
      await prepareImage({ repoRoot: ROOT, imageDir: image, image: `tp-local/${image}:${VERSION}`, kubeconfig: cluster.kubeconfig });
    }
    await cli.ok(['install'], 300_000);
  }
  await kube.apply([namespace(ns), ...app('web', { GREETING }), ...app('api', {}), clientPod]);
  for (const name of ['web', 'api']) {
    await kube.kubectl(['-n', ns, 'rollout', 'status', `deployment/${name}`, '--timeout=180s'], { timeoutMs: 190_000 });
  }
  await kube.kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s'], { timeoutMs: 190_000 });

  localPort = await freePort();
  cliPort = await freePort();
  dirs = await makeCodeServerDirs({
    settings: {
      'telepresence.namespace': ns,
      'telepresence.kubeconfig': cluster.kubeconfig,
      // Intercepts only. This machine is the cluster's node: its network namespace already routes
      // the pod and service subnets to the cluster's bridge, and outbound access rightly refuses
      // to take them over (subnet-conflict). outbound-debug.test.ts tests outbound access from a
      // workstation namespace of its own.
      'telepresence.outbound': false,
    },
    workspaceFiles: { 'server.js': serverJs(), '.vscode/launch.json': launchJson(localPort) },
  });
  await installExtension(dirs, VSIX);
  // The extension's daemon socket is the test CLI's: one daemon, shared as on a workstation.
  server = await startCodeServer(dirs, {
    env: { KUBECONFIG: cluster.kubeconfig, XDG_RUNTIME_DIR: cli.runtimeDir, XDG_CACHE_HOME: join(cli.runtimeDir, 'cache') },
  });
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
  // The daemon the extension started, first: it departs from the manager, removing intercepts.
  await cp(join(cli.runtimeDir, 'cache', 'telepresence-ts', 'daemon.log'), join(ARTIFACTS, 'daemon.log')).catch(() => undefined);
  await cli.dispose();
  await server?.stop();
  if (server) await writeFile(join(ARTIFACTS, 'code-server.log'), server.output());
  // VS Code's own logs, among them the extension's output channel (exthost*/output_logging_*).
  if (dirs) await cp(join(dirs.userDataDir, 'logs'), join(ARTIFACTS, 'vscode-logs'), { recursive: true }).catch(() => undefined);
  if (dirs) await removeCodeServerDirs(dirs);
  await kube.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
});

// ---------------------------------------------------------------------------------------------
// Not connected

t.test('the welcome view offers to connect; Connect shows the context and its workloads', async (t) => {
  await step('connect', async (wb) => {
    await wb.openViewContainer('Telepresence');
    await wb.resizeSideBar(620);
    const body = await wb.expandView('Workloads');
    const button = wb.welcomeButton(body, 'Connect');
    await button.waitFor({ state: 'visible', timeout: 60_000 });
    t.ok(await button.isVisible(), 'a Connect button in the welcome view');
    await wb.screenshot('welcome-connect');
    await button.click();

    const web = wb.treeRow(body, 'web');
    await web.waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.ok(await wb.treeRow(body, ns).isVisible(), 'the connected namespace is a row');
    t.ok(await wb.treeRow(body, 'api').isVisible(), 'both workloads of the namespace are rows');
    // Kind, ready replicas and agent state, once the daemon has listed the namespace.
    await web.filter({ hasText: /Deployment · 1\/1 ready · no agent/ }).waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.match(await web.innerText(), /Deployment · 1\/1 ready · no agent/);
    await wb.expandRow(web);
    const port = wb.treeRow(body, 'web:80 (http) → echo:8080');
    await port.waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.ok(await port.isVisible(), "the workload's interceptable port");
    const status = wb.page.locator('.part.statusbar [aria-label^="Telepresence: connected"]').first();
    await status.waitFor({ state: 'attached', timeout: TREE_TIMEOUT_MS });
    const label = await status.getAttribute('aria-label');
    // Off may be said ("off") or left out (no outbound status): both mean intercepts only.
    t.match(label, /; 0 intercepts(\nOutbound access: off \(intercepts only\))?$/, 'the status bar shows the connection, without outbound access');
    t.equal(await status.locator('.codicon-globe').count(), 0, 'no globe: the settings ask for intercepts only');
    await wb.screenshot('tree');
  });
});

// ---------------------------------------------------------------------------------------------
// Intercepted

t.test('right-click Intercept… on the workload asks the local port and headers, then intercepts', async (t) => {
  await step('intercept', async (wb) => {
    const body = await wb.expandView('Workloads');
    await wb.contextMenu(wb.treeRow(body, 'web'), 'Intercept…');
    // One port: no port question. The local port, then the request filter (none: a global intercept).
    await wb.answerInput(/local port that receives the traffic/, String(localPort));
    await wb.answerInput(/Only requests that match all of these/, '');
    t.pass('asked for the local port and the request filter, not for the port to intercept');
    const done = wb.page.locator('.notifications-toasts .notification-toast').filter({ hasText: `Intercepted web: web:80 → localhost:${localPort}` }).first();
    await done.waitFor({ state: 'visible', timeout: INTERCEPT_TIMEOUT_MS });
    t.match(await done.innerText(), /Debug/, 'the notification offers Debug');
    t.match(await done.innerText(), /Open Environment File/, 'and the environment file');
    const row = wb.treeRow(body, `web-${ns}`);
    await row.waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.match(await row.innerText(), new RegExp(`web:80 → localhost:${localPort} · yours · all traffic`), 'the intercept row names target, owner and headers');
    await wb.screenshot('intercepted-by-right-click');
    t.same(await cliInterceptsOf('web'), [`web-${ns}`], 'the CLI lists the intercept made in VS Code');
  });
});

t.test("right-click Open Environment File on the intercept shows the container's environment", async (t) => {
  await step('env-file', async (wb) => {
    const body = await wb.expandView('Workloads');
    await wb.contextMenu(wb.treeRow(body, `web-${ns}`), 'Open Environment File');
    const tab = wb.page.locator('.tabs-container .tab.active').filter({ hasText: /\.env$/ });
    await tab.waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    const text = wb.page.locator('.editor-instance .monaco-editor .view-lines').first();
    await text.filter({ hasText: 'GREETING' }).waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    // The editor renders spaces as non-breaking ones.
    t.match((await text.innerText()).replace(/\u00a0/g, ' '), /GREETING=.?hello from the cluster/, 'the workload declares GREETING');
    await wb.screenshot('environment-file');
  });
});

t.test('an intercept made with the CLI appears in the tree', async (t) => {
  await step('cli-intercept', async (wb) => {
    // No volumes: this is about the tree, and sshfs is not what the suite tests.
    await cli.ok(['intercept', 'api', '--port', String(cliPort), '--mount', 'false'], INTERCEPT_TIMEOUT_MS);
    const body = await wb.expandView('Workloads');
    await wb.expandRow(wb.treeRow(body, 'api'));
    const row = wb.treeRow(body, `api-${ns}`);
    await row.waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.match(await row.innerText(), new RegExp(`localhost:${cliPort}`));
    const status = wb.page.locator('.part.statusbar [aria-label^="Telepresence: connected"][aria-label*="; 2 intercepts"]').first();
    await status.waitFor({ state: 'attached', timeout: TREE_TIMEOUT_MS });
    t.equal(await status.count(), 1, 'the status bar counts both');
    await wb.screenshot('cli-intercept-in-tree');
  });
});

t.test('right-click Watch Traffic on the CLI-made intercept: its requests appear live, in order; a click shows the headers, credentials masked', async (t) => {
  await step('watch-traffic', async (wb) => {
    // The CLI intercept's local process: answers each request with 201.
    const local = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.statusCode = 201;
        res.end('{"handledBy":"workstation"}');
      });
    });
    await new Promise<void>((ok) => local.listen(cliPort, '127.0.0.1', ok));
    t.teardown(async () => {
      local.closeAllConnections();
      await new Promise<void>((ok) => local.close(() => ok()));
    });
    const body = await wb.expandView('Workloads');
    await wb.contextMenu(wb.treeRow(body, `api-${ns}`), 'Watch Traffic');
    const panel = wb.activeWebview();
    await panel.locator('#status').filter({ hasText: `Watching api-${ns}` }).waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.pass('a panel for the intercept opened');
    const rows = panel.locator('#requests tbody tr.row.http');
    // The agent reports requests once it has learnt of the watcher (the manager's next snapshot).
    let probes = 0;
    await eventually(
      async () => {
        if ((await rows.filter({ hasText: '/probe-' }).count()) > 0) return;
        await getFromPod(`http://api.${ns}/probe-${probes++}`);
        throw new Error('no probe row yet');
      },
      { timeoutMs: TREE_TIMEOUT_MS, intervalMs: 500, what: 'a probe request in the panel' },
    );
    const paths = ['/orders/1', '/orders/2', '/orders/3'];
    for (const path of paths) await getFromPod(`http://api.${ns}${path}`, { authorization: 'Bearer vscode-secret' });
    const ordered = rows.filter({ hasText: '/orders/' });
    await eventually(
      async () => {
        const n = await ordered.count();
        if (n < paths.length) throw new Error(`${n} of ${paths.length} rows`);
      },
      { timeoutMs: TREE_TIMEOUT_MS, intervalMs: 250, what: 'a row per request' },
    );
    const texts = await ordered.allInnerTexts();
    t.strictSame(
      texts.map((row) => /GET (\/orders\/\d)/.exec(row)?.[1]),
      paths,
      'one row per request, in the order sent',
    );
    t.ok(texts.every((row) => /\b201\b/.test(row) && /workstation/.test(row)), `each with its status and who answered:\n${texts.join('\n')}`);
    await ordered.nth(1).click();
    const headers = panel.locator('#request-headers');
    await headers.filter({ hasText: /authorization/i }).waitFor({ state: 'visible', timeout: TREE_TIMEOUT_MS });
    t.match(await panel.locator('#details-title').innerText(), /GET \/orders\/2/, 'the clicked request');
    t.match(await headers.innerText(), /authorization: Bearer ••••••/i, 'its headers, the credential masked');
    t.notMatch(await headers.innerText(), /vscode-secret/);
    await wb.screenshot('watch-traffic');
  });
});

t.test('a breakpoint in the local handler stops on a request sent from a pod', async (t) => {
  await step('debug', async (wb) => {
    await wb.openFile('server.js');
    await wb.goToLine(BREAKPOINT_LINE);
    await wb.runCommand('Debug: Toggle Breakpoint');
    await wb.breakpointGlyphs().first().waitFor({ state: 'visible', timeout: 20_000 });
    t.equal(await wb.breakpointGlyphs().count(), 1, 'one breakpoint in the margin');
    await wb.screenshot('breakpoint-set');

    await wb.runCommand('Debug: Select and Start Debugging', { opensPicker: true });
    await wb.pickQuick('Run server');
    await eventually(() => accepts(localPort), { timeoutMs: 60_000, intervalMs: 250, what: `the debuggee listening on ${localPort}` });
    t.pass(`the debuggee listens on the intercept's local port ${localPort}`);

    const answer = getFromPod(`http://web.${ns}/`);
    // Fails the test now rather than leaving an unhandled rejection if the request breaks early.
    answer.catch(() => undefined);
    const paused = wb.callStackStates().filter({ hasText: /paused on breakpoint/i }).first();
    await paused.waitFor({ state: 'visible', timeout: 60_000 });
    t.match(await paused.innerText(), /paused on breakpoint/i, 'the call stack says why it paused');
    t.equal(await wb.topFrameLine(), BREAKPOINT_LINE, 'paused on the breakpoint line');
    t.ok(await wb.page.locator('.debug-top-stack-frame-line').first().isVisible(), 'the editor highlights the line');
    await wb.screenshot('paused-at-breakpoint');

    await wb.runCommand('Debug: Continue');
    const body = JSON.parse(await answer) as { handledBy: string; greeting: string | null; intercept: string | null };
    t.equal(body.handledBy, 'workstation', 'the request from the pod was answered by the debuggee');
    t.equal(body.greeting, GREETING, "the debuggee ran with the intercepted container's environment");
    t.match(body.intercept, new RegExp(`:web-${ns}$`), 'and knows its intercept');
  });
});

t.test('ending the debug session leaves its intercept (the default setting)', async (t) => {
  await step('debug-end', async (wb) => {
    await wb.runCommand('Debug: Stop');
    await eventually(
      async () => {
        const names = await cliInterceptsOf('web');
        if (names.length > 0) throw new Error(`web still intercepted by ${names.join(', ')}`);
      },
      { timeoutMs: TREE_TIMEOUT_MS, intervalMs: 1_000, what: 'the intercept of web left' },
    );
    await wb.openViewContainer('Telepresence');
    const body = await wb.expandView('Workloads');
    await wb.treeRow(body, `web-${ns}`).waitFor({ state: 'detached', timeout: TREE_TIMEOUT_MS });
    t.equal(await wb.treeRow(body, `web-${ns}`).count(), 0, 'the tree no longer shows it');
    t.same(await cliInterceptsOf('api'), [`api-${ns}`], 'the CLI-made intercept stays');
    await wb.screenshot('debug-ended-intercept-left');
  });
});

t.test('right-click Leave on the CLI-made intercept removes it', async (t) => {
  await step('leave', async (wb) => {
    const body = await wb.expandView('Workloads');
    await wb.contextMenu(wb.treeRow(body, `api-${ns}`), 'Leave');
    await wb.treeRow(body, `api-${ns}`).waitFor({ state: 'detached', timeout: TREE_TIMEOUT_MS });
    t.same(await cliInterceptsOf('api'), [], 'the CLI sees it gone');
    await wb.screenshot('left');
  });
});
