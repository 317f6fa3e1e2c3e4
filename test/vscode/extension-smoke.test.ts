/**
 * The packaged extension in a real VS Code: installs dist/telepresence-ts.vsix into code-server,
 * opens the workbench in Chromium, opens the Telepresence view (its welcome content, since no
 * cluster is connected) and runs a command from the palette.
 *
 * Needs `bash scripts/install-code-server.sh` and `bash scripts/package-vsix.sh` first (TP_VSIX
 * points at another .vsix). Screenshots (and code-server's log) land in
 * test/vscode/artifacts/extension-smoke/, replaced on every run.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, type Browser } from './src/browser.js';
import {
  installExtension,
  makeCodeServerDirs,
  removeCodeServerDirs,
  startCodeServer,
  type CodeServer,
  type CodeServerDirs,
} from './src/code-server.js';
import { Workbench, workbenchSteps } from './src/workbench.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VSIX = process.env['TP_VSIX'] ?? join(ROOT, 'dist', 'telepresence-ts.vsix');
const ARTIFACTS = join(ROOT, 'test', 'vscode', 'artifacts', 'extension-smoke');

function readVersion(packageJson: string): string {
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
}
/** The extension's own version (what VS Code lists) and the client's (what the command shows). */
const EXTENSION_ID = 'telepresence-ts.telepresence-ts';
const EXTENSION_VERSION = readVersion(join(ROOT, 'vscode-extension', 'package.json'));
const CLIENT_VERSION = readVersion(join(ROOT, 'package.json'));

let dirs: CodeServerDirs | undefined;
let server: CodeServer | undefined;
let browser: Browser | undefined;
let workbench: Workbench | undefined;
let installed: string[] = [];

const { step } = workbenchSteps(() => workbench);

t.before(async () => {
  if (!existsSync(VSIX)) throw new Error(`${VSIX} is missing; run: bash scripts/package-vsix.sh`);
  await rm(ARTIFACTS, { recursive: true, force: true });
  await mkdir(ARTIFACTS, { recursive: true });
  dirs = await makeCodeServerDirs({ workspaceFiles: { 'README.md': '# A workspace for the extension smoke test\n' } });
  installed = await installExtension(dirs, VSIX);
  // A runtime and cache folder of its own: no daemon of the user's (or another test's) is found.
  server = await startCodeServer(dirs, { env: { XDG_RUNTIME_DIR: join(dirs.root, 'run'), XDG_CACHE_HOME: join(dirs.root, 'cache') } });
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
  await server?.stop();
  if (server) await writeFile(join(ARTIFACTS, 'code-server.log'), server.output());
  if (dirs) await removeCodeServerDirs(dirs);
});

t.test('the .vsix installs into code-server', async (t) => {
  t.ok(installed.includes(`${EXTENSION_ID}@${EXTENSION_VERSION}`), `installed: ${installed.join(', ') || '(none)'}`);
});

t.test('the workbench loads with a Telepresence entry in the activity bar', async (t) => {
  await step('workbench', async (wb) => {
    const entry = wb.activityBarItem('Telepresence');
    // Extensions' entries appear once the extension host is up, after the workbench itself.
    await entry.waitFor({ state: 'visible', timeout: 120_000 });
    t.ok(await entry.isVisible(), 'Telepresence activity-bar entry visible');
    await wb.screenshot('workbench');
  });
});

t.test('the Telepresence view container opens with its Workloads view, offering to connect', async (t) => {
  await step('view', async (wb) => {
    await wb.openViewContainer('Telepresence');
    t.match(await wb.sideBarTitle().innerText(), /^telepresence: workloads$/i, 'side bar shows the Telepresence container and its one view');
    const body = await wb.expandView('Workloads');
    t.ok(await body.isVisible(), 'Workloads view visible');
    // VS Code shows this until the extension registers the view's TreeDataProvider on activation.
    const noProvider = body.getByText('There is no data provider registered');
    await noProvider.waitFor({ state: 'hidden', timeout: 60_000 });
    t.notOk(await noProvider.isVisible(), 'the extension registered the tree');
    // No daemon runs (this VS Code has a runtime folder of its own), so the tree has no rows and
    // VS Code shows the manifest's welcome content in its place.
    const connect = wb.welcomeButton(body, 'Connect');
    await connect.waitFor({ state: 'visible', timeout: 20_000 });
    t.match(await body.locator('.welcome-view-content').innerText(), /Not connected to a cluster/, 'the welcome text says why the view is empty');
    t.ok(await connect.isVisible(), 'and offers Connect');
    t.equal(await body.locator('.monaco-list[role="tree"] .monaco-list-row').count(), 0, 'no workloads while not connected');
    await wb.screenshot('telepresence-view');
  });
});

t.test('Telepresence: Show Version shows the client version', async (t) => {
  await step('show-version', async (wb) => {
    await wb.runCommand('Telepresence: Show Version');
    const toast = await wb.waitForNotification(`Telepresence client v${CLIENT_VERSION}`);
    t.match(await toast.innerText(), `Telepresence client v${CLIENT_VERSION}`, 'notification names the version');
    await wb.screenshot('show-version');
  });
});
