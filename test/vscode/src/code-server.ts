/**
 * A real VS Code for tests: code-server (VS Code's server with its web workbench) as installed by
 * scripts/install-code-server.sh, started on 127.0.0.1 with throwaway user-data, extensions and
 * workspace folders, so that every run starts from a clean VS Code and leaves nothing behind.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { processRunner, type LongRunning, type ProcessRunner } from '../../src/process-runner.js';

/** The release scripts/install-code-server.sh installs: the last that runs on Node 20. */
export const CODE_SERVER_VERSION = '4.100.3';

/** Where scripts/install-code-server.sh puts code-server; keep the two in step. */
export function codeServerInstallDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['TP_CODE_SERVER_DIR'];
  if (explicit) return explicit;
  const cache = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(cache, 'telepresence-ts', `code-server-${CODE_SERVER_VERSION}`);
}

/** code-server's entry script (run with node), or a helpful error when it is not installed. */
export function codeServerEntry(installDir: string = codeServerInstallDir()): string {
  const entry = join(installDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  // The stamp is written last, so a half-finished install does not count as installed.
  if (!existsSync(entry) || !existsSync(join(installDir, '.tp-installed'))) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} is not installed in ${installDir}; run: bash scripts/install-code-server.sh`);
  }
  return entry;
}

/**
 * User settings of every test VS Code: nothing that would pop up over what a test looks at
 * (workspace-trust dialog, welcome page, tips), and nothing that reaches for the network.
 */
export const TEST_SETTINGS: Readonly<Record<string, unknown>> = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'chat.commandCenter.enabled': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
};

export interface CodeServerOptions {
  /** Extra user settings on top of TEST_SETTINGS. */
  readonly settings?: Readonly<Record<string, unknown>>;
  /** Files to create in the workspace folder, by path relative to it. */
  readonly workspaceFiles?: Readonly<Record<string, string>>;
  readonly installDir?: string;
  readonly runner?: ProcessRunner;
  /**
   * Variables set for code-server and so for its extension host (e.g. the KUBECONFIG and
   * XDG_RUNTIME_DIR that put the extension on the same cluster and daemon socket as a test's CLI).
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * The IPv4 address code-server listens on (default 127.0.0.1). A code-server started inside a
   * network namespace (through `runner`) listens on the namespace's veth address instead, which
   * a browser in the root namespace can reach.
   */
  readonly host?: string;
}

export interface CodeServer {
  /** e.g. http://127.0.0.1:41234 (the host given), no trailing slash. */
  readonly url: string;
  /** The workbench URL that opens `workspaceDir`. */
  readonly workbenchUrl: string;
  readonly workspaceDir: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  /** Everything code-server has printed so far (for diagnostics and artifacts). */
  output(): string;
  /** Stops code-server and removes its temporary folders. Safe to call twice. */
  stop(): Promise<void>;
}

/** Installing an extension into a folder uses code-server's CLI; startup and install are bounded. */
const INSTALL_TIMEOUT_MS = 120_000;
// code-server listens within about a second here; the rest is headroom for a busy 2-core machine.
const LISTEN_TIMEOUT_MS = 60_000;

/**
 * The environment for code-server: ours, minus what the test runner injected. tap's NODE_OPTIONS
 * (its TypeScript loader) would otherwise be loaded into code-server and every extension host.
 */
function codeServerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key.startsWith('TAP') || key.startsWith('VSCODE_')) continue;
    env[key] = value;
  }
  return env;
}

/** Folders of one test VS Code; shared by `installExtension` and `startCodeServer`. */
export interface CodeServerDirs {
  readonly root: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  readonly workspaceDir: string;
  readonly configFile: string;
}

/** Creates a fresh set of folders under the system temp folder, with TEST_SETTINGS in place. */
export async function makeCodeServerDirs(options: Pick<CodeServerOptions, 'settings' | 'workspaceFiles'> = {}): Promise<CodeServerDirs> {
  const root = await mkdtemp(join(tmpdir(), 'tp-code-server-'));
  const dirs: CodeServerDirs = {
    root,
    userDataDir: join(root, 'user-data'),
    extensionsDir: join(root, 'extensions'),
    workspaceDir: join(root, 'workspace'),
    // A config file of our own: otherwise code-server writes ~/.config/code-server/config.yaml.
    configFile: join(root, 'config.yaml'),
  };
  await mkdir(join(dirs.userDataDir, 'User'), { recursive: true });
  await mkdir(dirs.extensionsDir, { recursive: true });
  await mkdir(dirs.workspaceDir, { recursive: true });
  await writeFile(dirs.configFile, 'auth: none\n');
  const settings = { ...TEST_SETTINGS, ...options.settings };
  await writeFile(join(dirs.userDataDir, 'User', 'settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
  for (const [path, text] of Object.entries(options.workspaceFiles ?? {})) {
    const file = join(dirs.workspaceDir, path);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, text);
  }
  return dirs;
}

function commonArgs(dirs: CodeServerDirs): string[] {
  return ['--config', dirs.configFile, '--user-data-dir', dirs.userDataDir, '--extensions-dir', dirs.extensionsDir];
}

/**
 * `code-server --install-extension <vsix>` into the folders' extensions dir; returns
 * `publisher.name@version` of every extension installed there afterwards.
 */
export async function installExtension(
  dirs: CodeServerDirs,
  vsix: string,
  options: Pick<CodeServerOptions, 'installDir' | 'runner'> = {},
): Promise<string[]> {
  const runner = options.runner ?? processRunner;
  const entry = codeServerEntry(options.installDir);
  const env = codeServerEnv();
  const install = await runner.run(process.execPath, [entry, ...commonArgs(dirs), '--install-extension', vsix], {
    env,
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
  if (install.exitCode !== 0) {
    throw new Error(`code-server --install-extension ${vsix} failed (${describeExit(install)}):\n${install.stdout}${install.stderr}`);
  }
  const list = await runner.run(process.execPath, [entry, ...commonArgs(dirs), '--list-extensions', '--show-versions'], {
    env,
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
  if (list.exitCode !== 0) {
    throw new Error(`code-server --list-extensions failed (${describeExit(list)}):\n${list.stdout}${list.stderr}`);
  }
  return list.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^[\w-]+\.[\w-]+@/.test(line));
}

function describeExit(r: { exitCode: number | null; signal: string | null; timedOut: boolean }): string {
  if (r.timedOut) return 'timed out';
  return r.signal ? `killed by ${r.signal}` : `exit status ${String(r.exitCode)}`;
}

/**
 * Starts code-server with `--auth none` on 127.0.0.1 (or `host`) and a port the kernel picks
 * (code-server prints the address it got), serving the given folders.
 */
export async function startCodeServer(dirs: CodeServerDirs, options: Pick<CodeServerOptions, 'installDir' | 'runner' | 'env' | 'host'> = {}): Promise<CodeServer> {
  const runner = options.runner ?? processRunner;
  const entry = codeServerEntry(options.installDir);
  const host = options.host ?? '127.0.0.1';
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(host)) throw new Error(`code-server's host must be an IPv4 address, not ${host}`);
  const child: LongRunning = runner.start(
    process.execPath,
    [
      entry,
      ...commonArgs(dirs),
      '--auth',
      'none',
      '--bind-addr',
      `${host}:0`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      dirs.workspaceDir,
    ],
    { env: { ...codeServerEnv(), ...options.env } },
  );
  let url: string;
  try {
    const listening = new RegExp(`HTTP server listening on (http://${host.replace(/\./g, '\\.')}:\\d+)/`);
    const match = await child.waitForOutput(listening, LISTEN_TIMEOUT_MS);
    url = match[1] ?? '';
  } catch (err) {
    await child.stop();
    await reapLeftovers(dirs.root);
    throw err;
  }
  let stopped = false;
  return {
    url,
    workbenchUrl: `${url}/?folder=${encodeURIComponent(dirs.workspaceDir)}`,
    workspaceDir: dirs.workspaceDir,
    userDataDir: dirs.userDataDir,
    extensionsDir: dirs.extensionsDir,
    output: () => child.output(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await child.stop();
      await reapLeftovers(dirs.root);
    },
  };
}

/** How long leftover helper processes get to exit on SIGTERM before SIGKILL. */
const REAP_GRACE_MS = 5_000;
const REAP_POLL_MS = 100;

/**
 * Ends the VS Code helper processes (extension host, pty host, file watcher) that outlive a
 * stopped code-server: the server does not always take its extension host down with it, and an
 * orphaned extension host waits hours for a client to reconnect. They are found by this
 * instance's own temp folder in their environment (CODE_SERVER_SESSION_SOCKET lies under it),
 * which no other process has, so nothing else is touched. Linux-only (/proc), like the harness.
 */
async function reapLeftovers(root: string): Promise<void> {
  const pids = await processesMentioning(root);
  if (pids.length === 0) return;
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + REAP_GRACE_MS;
  let alive = pids;
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, REAP_POLL_MS));
    alive = alive.filter((pid) => signal(pid, 0));
  }
  for (const pid of alive) signal(pid, 'SIGKILL');
}

/** Pids of processes whose environment or command line contains `text`. */
async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    for (const file of ['environ', 'cmdline']) {
      const content = await readFile(`/proc/${entry}/${file}`, 'utf8').catch(() => '');
      if (content.includes(text)) {
        found.push(pid);
        break;
      }
    }
  }
  return found;
}

/** process.kill that reports whether the process existed instead of throwing. */
function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Removes the folders made by `makeCodeServerDirs`. */
export async function removeCodeServerDirs(dirs: CodeServerDirs): Promise<void> {
  await rm(dirs.root, { recursive: true, force: true });
}
