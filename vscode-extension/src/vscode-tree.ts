import * as vscode from 'vscode';
import type { TreeNode, WorkloadsTree } from './workloads-tree.js';

/** Adapts the vscode-free WorkloadsTree to VS Code's TreeDataProvider. */
export class WorkloadsTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  readonly #changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly #unsubscribe: () => void;
  readonly onDidChangeTreeData = this.#changed.event;

  constructor(private readonly tree: WorkloadsTree) {
    this.#unsubscribe = tree.onDidChange(() => this.#changed.fire(undefined));
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const item = new vscode.TreeItem(
      node.label,
      node.collapsible ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None,
    );
    item.id = node.id;
    item.description = node.description;
    item.contextValue = node.contextValue;
    return item;
  }

  getChildren(node?: TreeNode): Promise<TreeNode[]> {
    return this.tree.getChildren(node);
  }

  dispose(): void {
    this.#unsubscribe();
    this.#changed.dispose();
  }
}
