/** The traffic panel's webview over the vscode API (traffic-panel.ts holds the logic). */
import * as vscode from 'vscode';
import type { TrafficView } from './traffic-panel.js';

/** A webview panel beside the editor: scripts on (the page's own, by nonce), no local resources. */
export function vscodeTrafficView(title: string): { view: TrafficView; cspSource: string } {
  const panel = vscode.window.createWebviewPanel('telepresence.traffic', title, vscode.ViewColumn.Active, {
    enableScripts: true,
    // Rows live in the page: keep it when the tab is hidden rather than lose them.
    retainContextWhenHidden: true,
    localResourceRoots: [],
  });
  return {
    cspSource: panel.webview.cspSource,
    view: {
      setHtml: (html) => (panel.webview.html = html),
      post: (message) => void panel.webview.postMessage(message),
      reveal: () => panel.reveal(),
      onMessage: (listener) => void panel.webview.onDidReceiveMessage(listener),
      onDidDispose: (listener) => void panel.onDidDispose(listener),
    },
  };
}
