/** The real ports over the vscode API: the window, the debugger, settings and the storage folder. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { DebugHost, FileStore, Host, LaunchConfig, Settings } from './host.js';

/** The window, with `output` as the Telepresence log. */
export function vscodeHost(output: vscode.OutputChannel): Host {
  return {
    showInformationMessage: (message) => {
      void vscode.window.showInformationMessage(message);
    },
    showErrorMessage: (message) => {
      void vscode.window.showErrorMessage(message);
    },
    showMessage: async (level, message, actions) => {
      const show =
        level === 'error' ? vscode.window.showErrorMessage : level === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
      return Promise.resolve(show(message, ...actions));
    },
    pick: async (title, items) => {
      const chosen = await vscode.window.showQuickPick(
        items.map((i) => ({ label: i.label, description: i.description, value: i.value })),
        { title, ignoreFocusOut: true },
      );
      return chosen?.value;
    },
    askText: async (o) =>
      vscode.window.showInputBox({
        title: o.title,
        prompt: o.prompt,
        value: o.value,
        placeHolder: o.placeHolder,
        ignoreFocusOut: true,
        validateInput: o.validate,
      }),
    withProgress: async (title, task) =>
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: false }, (progress) =>
        task((line) => {
          output.appendLine(`${title}: ${line}`);
          progress.report({ message: line });
        }),
      ),
    log: (line) => output.appendLine(`[${new Date().toISOString()}] ${line}`),
    showLog: () => output.show(true),
    openFile: async (path) => {
      await vscode.window.showTextDocument(vscode.Uri.file(path), { preview: false });
    },
    openSettings: async (query) => {
      await vscode.commands.executeCommand('workbench.action.openSettings', query);
    },
  };
}

export const vscodeDebugHost: DebugHost = {
  launchConfigurations: () => {
    const configs: LaunchConfig[] = [];
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const launch = vscode.workspace.getConfiguration('launch', folder.uri);
      configs.push(...(launch.get<LaunchConfig[]>('configurations') ?? []));
    }
    return configs;
  },
  startDebugging: async (config) => vscode.debug.startDebugging(vscode.workspace.workspaceFolders?.[0], config),
};

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('telepresence');
  return {
    kubeconfig: c.get<string>('kubeconfig', ''),
    context: c.get<string>('context', ''),
    namespace: c.get<string>('namespace', ''),
    managerNamespace: c.get<string>('managerNamespace', ''),
    leaveInterceptOnDebugEnd: c.get<boolean>('debug.leaveInterceptOnEnd', true),
    outbound: c.get<boolean>('outbound', true),
    alsoProxy: strings(c.get<unknown>('alsoProxy', [])),
    neverProxy: strings(c.get<unknown>('neverProxy', [])),
    cliPath: c.get<string>('cliPath', ''),
  };
}

/** A settings.json edited by hand may hold anything: only the strings of an array count. */
function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function fileStore(dir: vscode.Uri): FileStore {
  const pathFor = async (name: string): Promise<string> => {
    await mkdir(dir.fsPath, { recursive: true });
    return join(dir.fsPath, name.replace(/[^\w.-]/g, '_'));
  };
  return {
    pathFor,
    write: async (name, text) => {
      const path = await pathFor(name);
      await writeFile(path, text, { mode: 0o600 });
      return path;
    },
  };
}
