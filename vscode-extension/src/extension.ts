/**
 * Composition root of the extension: builds the real adapters and registers what package.json
 * contributes. Logic lives in the vscode-free modules beside this one.
 */
import { VERSION, daemonLogPath, daemonSocketPath, openDaemon, type KubeFlags } from '@telepresence-ts/core';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { Commands } from './commands.js';
import { launchDaemon, startKubeHelper } from './child-processes.js';
import { describeCliLookup, findCli } from './cli-bundle.js';
import { nodeCliLookupFs } from './cli-lookup-fs.js';
import { DebugIntegration } from './debug.js';
import type { LaunchConfig } from './host.js';
import { SHOW_LOGS, lostInterceptMessages, reportError } from './notify.js';
import { outboundFailureMessage, outboundRequest } from './outbound.js';
import { Session } from './session.js';
import { showVersion } from './show-version.js';
import { statusBarView } from './status-bar.js';
import { TrafficPanels } from './traffic-panel.js';
import { fileStore, readSettings, vscodeDebugHost, vscodeHost } from './vscode-host.js';
import { vscodeTrafficView } from './vscode-traffic-view.js';
import { WorkloadsTreeProvider } from './vscode-tree.js';
import { WorkloadsTree } from './workloads-tree.js';

/** How long a daemon the extension starts may take to answer: longer than the CLI's 10 s, since VS
 * Code starting (or a build running) on the same machine slows Node's start-up. */
const DAEMON_START_MS = 30_000;

/** Settings first, then kubectl's defaults (the extension host's $KUBECONFIG, ~/.kube/config). */
function kubeFlags(): KubeFlags {
  const s = readSettings();
  return { kubeconfig: s.kubeconfig, context: s.context, namespace: s.namespace, kubeconfigEnv: process.env['KUBECONFIG'] ?? '' };
}

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Telepresence');
  const host = vscodeHost(output);
  const socketPath = daemonSocketPath();
  const logPath = daemonLogPath();
  const daemonScript = join(context.extensionPath, 'dist', 'daemon.js');
  const helperScript = join(context.extensionPath, 'dist', 'kube-helper.js');
  const helperLog = (line: string): void => host.log(line);
  // The same lookup the daemon makes at start (daemon-main.ts): the daemon inherits this PATH.
  const cliLookup = () => findCli({ pathEnv: process.env['PATH'] ?? '', setting: readSettings().cliPath, version: VERSION }, nodeCliLookupFs);
  const startDaemon = (): void => {
    host.log(`starting the telepresence daemon; ${describeCliLookup(cliLookup())}`);
    launchDaemon(daemonScript, logPath, readSettings().cliPath);
  };
  const session = new Session({
    version: VERSION,
    openDaemon: (start) => openDaemon({ socketPath, logPath, start: start ? startDaemon : undefined, timeoutMs: DAEMON_START_MS }),
    createWatcher: (flags) => Promise.resolve(startKubeHelper(helperScript, flags, helperLog)),
    kubeFlags,
    managerNamespace: () => readSettings().managerNamespace,
    outbound: () => outboundRequest(readSettings()),
    log: (line) => host.log(line),
  });
  const files = fileStore(context.globalStorageUri);
  const debug = new DebugIntegration({ session, host, debug: vscodeDebugHost, settings: readSettings, files });
  const commands = new Commands({
    host,
    session,
    debug,
    files,
    cliLookup,
    installManager: async (progress) => {
      const helper = startKubeHelper(helperScript, kubeFlags(), helperLog);
      try {
        await helper.install(readSettings().managerNamespace, progress);
      } finally {
        helper.close();
      }
    },
  });

  const trafficPanels = new TrafficPanels({ session, host, createView: vscodeTrafficView });
  const tree = new WorkloadsTreeProvider(new WorkloadsTree(session));
  const status = vscode.window.createStatusBarItem('telepresence.status', vscode.StatusBarAlignment.Left, 10);
  status.name = 'Telepresence';
  const render = (): void => {
    const view = statusBarView(session.phase, session.connection?.context, session.intercepts.length, session.connection?.outbound);
    status.text = view.text;
    status.tooltip = view.tooltip;
    status.accessibilityInformation = { label: view.tooltip };
    status.command = view.command;
    status.backgroundColor = view.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    void vscode.commands.executeCommand('setContext', 'telepresence.phase', session.phase);
  };
  render();
  status.show();
  let outbound = session.connection?.outbound;
  const onOutboundChange = (): void => {
    const failure = outboundFailureMessage(outbound, session.connection?.outbound);
    outbound = session.connection?.outbound;
    if (failure === undefined) return;
    host.log(failure);
    void host.showMessage('warning', failure, [SHOW_LOGS]).then((choice) => {
      if (choice === SHOW_LOGS) host.showLog();
    });
  };

  let lost = session.connection?.lostIntercepts ?? [];
  const onLostIntercepts = (): void => {
    const next = session.connection?.lostIntercepts ?? [];
    const messages = lostInterceptMessages(lost, next);
    lost = next;
    for (const message of messages) {
      host.log(message);
      void host.showMessage('warning', message, [SHOW_LOGS]).then((choice) => {
        if (choice === SHOW_LOGS) host.showLog();
      });
    }
  };

  const resolver = (f: (c: LaunchConfig) => Promise<LaunchConfig | undefined>): vscode.DebugConfigurationProvider => ({
    resolveDebugConfiguration: async (_folder, config) => {
      try {
        return await f(config);
      } catch (err: unknown) {
        void reportError(host, `Cannot debug "${config.name}" with Telepresence`, err);
        return undefined;
      }
    },
  });

  context.subscriptions.push(
    output,
    status,
    tree,
    { dispose: session.onDidChange(render) },
    { dispose: session.onDidChange(onOutboundChange) },
    { dispose: session.onDidChange(onLostIntercepts) },
    { dispose: () => session.dispose() },
    vscode.window.registerTreeDataProvider('telepresence.workloads', tree),
    vscode.commands.registerCommand('telepresence.showVersion', () => showVersion(host, VERSION)),
    vscode.commands.registerCommand('telepresence.connect', () => commands.connect()),
    vscode.commands.registerCommand('telepresence.disconnect', () => commands.disconnect()),
    vscode.commands.registerCommand('telepresence.installManager', () => commands.installManager()),
    vscode.commands.registerCommand('telepresence.intercept', (node?: Parameters<Commands['intercept']>[0]) => commands.intercept(node)),
    vscode.commands.registerCommand('telepresence.replace', (node?: Parameters<Commands['replace']>[0]) => commands.replace(node)),
    vscode.commands.registerCommand('telepresence.wiretap', (node?: Parameters<Commands['wiretap']>[0]) => commands.wiretap(node)),
    vscode.commands.registerCommand('telepresence.leave', (node?: Parameters<Commands['leave']>[0]) => commands.leave(node)),
    vscode.commands.registerCommand('telepresence.debug', (node?: Parameters<Commands['debug']>[0]) => commands.debug(node)),
    vscode.commands.registerCommand('telepresence.openEnvironmentFile', (node?: Parameters<Commands['openEnvironmentFile']>[0]) => commands.openEnvironmentFile(node)),
    vscode.commands.registerCommand('telepresence.watchTraffic', (node?: Parameters<TrafficPanels['open']>[0]) => trafficPanels.open(node)),
    vscode.commands.registerCommand('telepresence.showLogs', () => output.show(true)),
    vscode.debug.registerDebugConfigurationProvider('*', resolver((c) => debug.resolve(c))),
    vscode.debug.registerDebugConfigurationProvider('telepresence', resolver((c) => debug.resolveWrapper(c))),
    vscode.debug.onDidStartDebugSession((s) => debug.started(s.id, s.configuration, s.parentSession !== undefined)),
    vscode.debug.onDidTerminateDebugSession((s) => {
      debug.ended(s.id).catch((err: unknown) => reportError(host, 'Cannot leave the intercept of the debug session', err));
    }),
  );

  // A daemon the CLI (or an earlier window) connected: show its session at once.
  session.attach().catch((err: unknown) => reportError(host, 'Cannot attach to the telepresence daemon', err));
}

export function deactivate(): void {
  // Everything registered above is disposed through context.subscriptions.
}
