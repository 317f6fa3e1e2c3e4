/**
 * "Telepresence: Watch Traffic": a webview panel per engagement that lists its requests (and
 * connections) live, as `kubectl telepresence watch` prints them, and shows a request's headers,
 * credentials masked by core's one masking, when its row is clicked. The panel greys out, saying
 * why, when the stream ends (the intercept ended, the daemon went away).
 *
 * Free of any vscode import: the panel is a `TrafficView` port (vscode-traffic-view.ts is the
 * real one). The page is static HTML with a strict Content-Security-Policy: no remote content,
 * one inline script allowed by nonce; rows arrive as messages and are written with textContent.
 */
import { formatBytes, formatClock, formatDuration, toTpError, viewOf, type Header, type TrafficEvent } from '@telepresence-ts/core';
import { randomBytes } from 'node:crypto';
import type { Host } from './host.js';
import type { Session } from './session.js';
import type { TreeNode } from './workloads-tree.js';

/** How many rows a panel keeps; older ones scroll away. */
export const PANEL_ROWS = 500;

/** One row of the panel, as the page renders it. */
export interface TrafficRow {
  readonly kind: 'http' | 'tcp';
  readonly time: string;
  /** "GET /api/x", or for a connection "peer 10.0.0.5:4321". */
  readonly request: string;
  /** The status, "---" for none, "in 120 B / out 2.1 KiB" for a connection. */
  readonly status: string;
  readonly duration: string;
  readonly answeredBy: string;
  readonly pod: string;
  readonly source: string;
  readonly error: string;
  readonly requestHeaders: readonly Header[];
  readonly responseHeaders: readonly Header[];
}

/** What the extension posts to the page. */
export type PanelMessage = { readonly type: 'row'; readonly row: TrafficRow } | { readonly type: 'ended'; readonly message: string };

/** A webview panel as the logic sees it. */
export interface TrafficView {
  setHtml(html: string): void;
  post(message: PanelMessage): void;
  reveal(): void;
  /** Messages from the page: `{ type: 'ready' }` once its script runs. */
  onMessage(listener: (message: unknown) => void): void;
  /** Called once when the user closes the panel. */
  onDidDispose(listener: () => void): void;
}

export interface TrafficPanelsDeps {
  readonly session: Pick<Session, 'watchTraffic'>;
  readonly host: Pick<Host, 'log' | 'showMessage'>;
  /** Opens a panel titled `title`; `cspSource` is what the page may load styles from. */
  readonly createView: (title: string) => { view: TrafficView; cspSource: string };
  /** Credential headers are masked unless this says otherwise (a setting may). */
  readonly showCredentials?: () => boolean;
}

/** A row of the panel for an event. */
export function rowOf(e: TrafficEvent, showCredentials = false): TrafficRow {
  const v = viewOf(e, { showCredentials });
  const http = v.kind === 'http';
  const dropped = e.droppedBytes > 0 ? ` (dropped ${formatBytes(e.droppedBytes)})` : '';
  return {
    kind: v.kind,
    time: formatClock(e.startedAt),
    request: http ? `${e.method} ${e.path}` : `peer ${e.source}`,
    status: http ? (e.status === 0 ? '---' : String(e.status)) : `in ${formatBytes(e.bytesIn)} / out ${formatBytes(e.bytesOut)}${dropped}`,
    duration: formatDuration(e.durationMs),
    answeredBy: e.answeredBy,
    pod: e.podName,
    source: e.source,
    error: e.error,
    requestHeaders: v.requestHeaders ?? [],
    responseHeaders: v.responseHeaders ?? [],
  };
}

/** The open panels, one per engagement (by namespace and name). */
export class TrafficPanels {
  readonly #deps: TrafficPanelsDeps;
  readonly #open = new Map<string, TrafficView>();

  constructor(deps: TrafficPanelsDeps) {
    this.#deps = deps;
  }

  /** How many panels are open. */
  get size(): number {
    return this.#open.size;
  }

  /** Opens (or shows again) the panel of the intercept `node` is. */
  open(node: TreeNode | undefined): void {
    const ii = node?.intercept;
    const name = ii?.spec?.name ?? '';
    if (ii === undefined || name === '') {
      void this.#deps.host.showMessage('warning', 'Watch Traffic needs an intercept: right-click one in the Telepresence view', []);
      return;
    }
    const namespace = ii.spec?.namespace ?? '';
    const key = `${namespace}/${name}`;
    const existing = this.#open.get(key);
    if (existing !== undefined) {
      existing.reveal();
      return;
    }
    const { view, cspSource } = this.#deps.createView(`Traffic: ${name}`);
    this.#open.set(key, view);
    // Messages posted before the page's script listens would be lost: hold them until it says so.
    let pending: PanelMessage[] | undefined = [];
    const post = (m: PanelMessage): void => {
      if (pending === undefined) view.post(m);
      else pending.push(m);
    };
    view.onMessage((m) => {
      if ((m as { type?: unknown }).type !== 'ready' || pending === undefined) return;
      const held = pending;
      pending = undefined;
      for (const h of held) view.post(h);
    });
    view.setHtml(panelHtml(name, cspSource, randomBytes(16).toString('base64')));
    let ended = false;
    const end = (message: string): void => {
      if (ended) return;
      ended = true;
      post({ type: 'ended', message });
    };
    let stop = (): void => undefined;
    try {
      stop = this.#deps.session.watchTraffic(
        name,
        namespace,
        (e) => post({ type: 'row', row: rowOf(e, this.#deps.showCredentials?.() ?? false) }),
        (err) => {
          this.#deps.host.log(`traffic of ${name}: ${err === undefined ? 'the stream ended' : err.message}`);
          end(err === undefined ? 'The traffic-manager ended the stream.' : `${err.message}${err.hint !== undefined ? ` (${err.hint})` : ''}`);
        },
      );
    } catch (err: unknown) {
      end(toTpError(err).message);
    }
    view.onDidDispose(() => {
      ended = true;
      stop();
      this.#open.delete(key);
    });
  }
}

/** `text` safe inside HTML text and attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page: a table of rows, a details pane for the clicked one, and a status line. Rows come as
 * messages; everything from the cluster is written with textContent, never as HTML.
 */
export function panelHtml(name: string, cspSource: string, nonce: string): string {
  const title = escapeHtml(name);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${cspSource} 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Traffic: ${title}</title>
<style nonce="${nonce}">
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 8px; }
  body.ended #requests, body.ended #details { opacity: 0.5; }
  #status { margin: 6px 0; color: var(--vscode-descriptionForeground); }
  body.ended #status { color: var(--vscode-errorForeground); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 2px 8px 2px 0; white-space: nowrap; font-family: var(--vscode-editor-font-family); }
  tbody tr { cursor: pointer; }
  tbody tr:hover { background: var(--vscode-list-hoverBackground); }
  tbody tr.selected { background: var(--vscode-list-activeSelectionBackground); color: var(--vscode-list-activeSelectionForeground); }
  td.workstation { color: var(--vscode-charts-blue); }
  td.error { color: var(--vscode-errorForeground); }
  #details { margin-top: 10px; border-top: 1px solid var(--vscode-panel-border); padding-top: 6px; }
  #details h3 { font-size: 1em; margin: 6px 0 2px; }
  #details pre { margin: 0; font-family: var(--vscode-editor-font-family); white-space: pre-wrap; }
</style>
</head>
<body>
<div id="status">Watching ${title}: requests appear as they are answered.</div>
<table id="requests">
  <thead><tr><th>Time</th><th>Request</th><th>Status</th><th>Duration</th><th>Answered by</th><th>Pod</th></tr></thead>
  <tbody></tbody>
</table>
<div id="details" hidden>
  <div id="details-title"></div>
  <h3>Request headers</h3><pre id="request-headers"></pre>
  <h3>Response headers</h3><pre id="response-headers"></pre>
</div>
<script nonce="${nonce}">
(() => {
  const vscode = acquireVsCodeApi();
  const MAX = ${PANEL_ROWS};
  const body = document.querySelector('#requests tbody');
  const rows = [];
  const headers = (list) => list.length === 0 ? '(none)' : list.map((h) => h.name + ': ' + h.value).join('\\n');
  const show = (tr, row) => {
    for (const other of body.querySelectorAll('tr.selected')) other.classList.remove('selected');
    tr.classList.add('selected');
    document.getElementById('details').hidden = false;
    document.getElementById('details-title').textContent = row.time + '  ' + row.request + '  from ' + row.source + (row.error ? '  (' + row.error + ')' : '');
    document.getElementById('request-headers').textContent = headers(row.requestHeaders);
    document.getElementById('response-headers').textContent = headers(row.responseHeaders);
  };
  window.addEventListener('message', (event) => {
    const m = event.data;
    if (m.type === 'row') {
      const row = m.row;
      const tr = document.createElement('tr');
      tr.className = 'row ' + row.kind;
      for (const [text, cls] of [[row.time], [row.request], [row.status, row.error ? 'error' : ''], [row.duration], [row.answeredBy, row.answeredBy], [row.pod]]) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tr.addEventListener('click', () => show(tr, row));
      body.appendChild(tr);
      rows.push(tr);
      if (rows.length > MAX) rows.shift().remove();
    } else if (m.type === 'ended') {
      document.body.classList.add('ended');
      document.getElementById('status').textContent = 'Ended: ' + m.message;
    }
  });
  vscode.postMessage({ type: 'ready' });
})();
</script>
</body>
</html>`;
}
