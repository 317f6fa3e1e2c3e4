process.env.TZ = 'UTC';
import t from 'tap';
import { InterceptDisposition, TpError, type InterceptInfo, type TrafficEvent } from '@telepresence-ts/core';
import { Session } from '../src/session.js';
import { PANEL_ROWS, TrafficPanels, panelHtml, rowOf, type PanelMessage, type TrafficView } from '../src/traffic-panel.js';
import type { TreeNode } from '../src/workloads-tree.js';
import { FakeDaemon, FakeWatcher, sessionDeps, settle } from './fixtures/fake-core.js';
import { FakeHost } from './fixtures/fake-host.js';

function event(over: Partial<TrafficEvent> = {}): TrafficEvent {
  return {
    interceptId: 's1:web-shop',
    kind: 'http',
    startedAt: Date.UTC(2026, 0, 2, 12, 0, 1, 250),
    durationMs: 12,
    podName: 'web-1',
    source: '10.0.0.5:4321',
    answeredBy: 'workstation',
    bytesIn: 10,
    bytesOut: 2150,
    method: 'GET',
    path: '/api/x',
    status: 200,
    requestHeaders: [
      { name: 'Accept', value: '*/*' },
      { name: 'Authorization', value: 'Bearer secret' },
    ],
    responseHeaders: [{ name: 'Set-Cookie', value: 'sid=1' }],
    requestBody: Buffer.alloc(0),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
    ...over,
  };
}

function node(name: string, namespace = 'shop'): TreeNode {
  const intercept: InterceptInfo = {
    id: `s1:${name}`,
    spec: { name, namespace, workloadName: 'web', workloadKind: 'Deployment', serviceName: '', servicePort: '', containerName: '', localPort: 8080, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] },
    target: undefined,
    clientSessionId: 's1',
    clientName: 'alice@laptop',
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
  return { kind: 'intercept', id: name, label: name, description: '', tooltip: '', contextValue: 'intercept.mine', collapsible: 'none', icon: '', intercept };
}

class FakeView implements TrafficView {
  html = '';
  readonly posted: PanelMessage[] = [];
  revealed = 0;
  #onMessage: ((m: unknown) => void) | undefined;
  #onDispose: (() => void) | undefined;
  setHtml(html: string): void {
    this.html = html;
  }
  post(message: PanelMessage): void {
    this.posted.push(message);
  }
  reveal(): void {
    this.revealed++;
  }
  onMessage(listener: (m: unknown) => void): void {
    this.#onMessage = listener;
  }
  onDidDispose(listener: () => void): void {
    this.#onDispose = listener;
  }
  ready(): void {
    this.#onMessage?.({ type: 'ready' });
  }
  close(): void {
    this.#onDispose?.();
  }
}

async function setUp() {
  const daemon = new FakeDaemon();
  const session = new Session(sessionDeps(daemon, new FakeWatcher()));
  await session.connect();
  await settle();
  const host = new FakeHost();
  const views: FakeView[] = [];
  const titles: string[] = [];
  const panels = new TrafficPanels({
    session,
    host,
    createView: (title) => {
      titles.push(title);
      const view = new FakeView();
      views.push(view);
      return { view, cspSource: 'vscode-resource:' };
    },
  });
  return { daemon, panels, host, views, titles };
}

t.test('a row per event, credentials masked', async (t) => {
  const row = rowOf(event());
  t.match(row, { kind: 'http', time: '12:00:01.250', request: 'GET /api/x', status: '200', duration: '12 ms', answeredBy: 'workstation', pod: 'web-1' });
  t.strictSame(row.requestHeaders, [
    { name: 'Accept', value: '*/*' },
    { name: 'Authorization', value: 'Bearer ••••••' },
  ]);
  t.strictSame(row.responseHeaders, [{ name: 'Set-Cookie', value: '••••••' }]);
  t.equal(rowOf(event(), true).requestHeaders[1]?.value, 'Bearer secret', 'shown only when asked');
  t.match(rowOf(event({ kind: 'tcp', answeredBy: 'app', droppedBytes: 2048 })), { kind: 'tcp', request: 'peer 10.0.0.5:4321', status: 'in 10 B / out 2.1 KiB (dropped 2.0 KiB)' });
});

t.test('a panel per intercept: rows in order once the page is ready, then the end', async (t) => {
  const { daemon, panels, views, titles } = await setUp();
  panels.open(node('web-shop'));
  t.strictSame(titles, ['Traffic: web-shop']);
  t.ok(daemon.calls.includes('watchTraffic web-shop'));
  const stream = daemon.trafficStreams[0]!;
  stream.onEvent(event({ path: '/one' }));
  const view = views[0]!;
  t.strictSame(view.posted, [], 'held until the page listens');
  view.ready();
  stream.onEvent(event({ path: '/two', answeredBy: 'app' }));
  t.strictSame(
    view.posted.map((m) => (m.type === 'row' ? `${m.row.request} ${m.row.answeredBy}` : m.type)),
    ['GET /one workstation', 'GET /two app'],
  );
  panels.open(node('web-shop'));
  t.equal(views.length, 1, 'the same intercept: the same panel');
  t.equal(view.revealed, 1);
  stream.onEnd(new TpError('user', 'intercept-ended', 'the intercept "web-shop" ended'));
  t.match(view.posted.at(-1), { type: 'ended', message: /the intercept "web-shop" ended/ });
  view.close();
  t.ok(stream.stopped, 'closing the panel stops the stream');
  t.equal(panels.size, 0);
  panels.open(node('web-shop'));
  t.equal(views.length, 2, 'opened again after close');
});

t.test('not connected, or not an intercept: said so, no panel left open', async (t) => {
  const { panels, host, views } = await setUp();
  panels.open(undefined);
  t.match(host.messages, [{ level: 'warning', text: /needs an intercept/ }]);
  t.equal(views.length, 0);
  const session = new Session(sessionDeps(new FakeDaemon(), new FakeWatcher()));
  const lone = new TrafficPanels({ session, host, createView: () => ({ view: views[views.push(new FakeView()) - 1]!, cspSource: 'x' }) });
  lone.open(node('web-shop'));
  views[0]?.ready();
  t.match(views[0]?.posted, [{ type: 'ended', message: /not connected/ }]);
});

t.test('the page: strict CSP with a nonce, the name escaped, rows bounded', async (t) => {
  const html = panelHtml('<b>x</b>', 'vscode-resource:', 'N0nce');
  t.match(html, `content="default-src 'none'; style-src vscode-resource: 'nonce-N0nce'; script-src 'nonce-N0nce';"`);
  t.notMatch(html, '<b>x</b>');
  t.match(html, '&#60;b&#62;x&#60;/b&#62;');
  t.match(html, `const MAX = ${PANEL_ROWS};`);
  t.notMatch(html, /innerHTML/, 'cluster data is written as text only');
});
