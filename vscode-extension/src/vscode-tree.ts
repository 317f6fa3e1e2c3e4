import * as vscode from 'vscode';
import type { TreeNode, WorkloadsTree } from './workloads-tree.js';

const COLLAPSIBLE: Readonly<Record<TreeNode['collapsible'], vscode.TreeItemCollapsibleState>> = {
  none: vscode.TreeItemCollapsibleState.None,
  collapsed: vscode.TreeItemCollapsibleState.Collapsed,
  expanded: vscode.TreeItemCollapsibleState.Expanded,
};

/** Adapts the vscode-free WorkloadsTree to VS Code's TreeDataProvider. */
export class WorkloadsTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  readonly #changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly #unsubscribe: () => void;
  readonly onDidChangeTreeData = this.#changed.event;

  constructor(private readonly tree: WorkloadsTree) {
    this.#unsubscribe = tree.onDidChange(() => this.#changed.fire(undefined));
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const item = new vscode.TreeItem(node.label, COLLAPSIBLE[node.collapsible]);
    item.id = node.id;
    item.description = node.description;
    item.tooltip = node.tooltip;
    item.contextValue = node.contextValue;
    item.iconPath = new vscode.ThemeIcon(node.icon);
    return item;
  }

  getChildren(node?: TreeNode): TreeNode[] {
    return this.tree.getChildren(node);
  }

  dispose(): void {
    this.#unsubscribe();
    this.#changed.dispose();
  }
}
