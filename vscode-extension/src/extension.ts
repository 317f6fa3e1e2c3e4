/**
 * Composition root of the extension: builds the real adapters and registers what package.json
 * contributes. Logic lives in the vscode-free modules beside this one.
 */
import { VERSION } from '@telepresence-ts/core';
import * as vscode from 'vscode';
import { showVersion } from './show-version.js';
import { vscodeHost } from './vscode-host.js';
import { WorkloadsTreeProvider } from './vscode-tree.js';
import { EMPTY_SOURCE, WorkloadsTree } from './workloads-tree.js';

export function activate(context: vscode.ExtensionContext): void {
  const tree = new WorkloadsTreeProvider(new WorkloadsTree(EMPTY_SOURCE));
  context.subscriptions.push(
    tree,
    vscode.window.registerTreeDataProvider('telepresence.workloads', tree),
    vscode.commands.registerCommand('telepresence.showVersion', () => showVersion(vscodeHost, VERSION)),
  );
}

export function deactivate(): void {
  // Everything registered above is disposed through context.subscriptions.
}
