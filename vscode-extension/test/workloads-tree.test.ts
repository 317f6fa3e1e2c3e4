import { InterceptDisposition, type InterceptInfo } from '@telepresence-ts/core';
import t from 'tap';
import type { WorkloadView } from '../src/session.js';
import { WorkloadsTree, headersText, interceptNode, workloadNode, type TreeSource } from '../src/workloads-tree.js';

function intercept(name: string, session: string, headers: Array<{ name: string; value: string }> = []): InterceptInfo {
  return {
    id: `${session}:${name}`,
    spec: { name, namespace: 'shop', workloadName: 'web', workloadKind: 'Deployment', serviceName: 'web', servicePort: 'http', containerName: 'app', localPort: 8080, headers, httpPathPrefix: '', httpMethods: [], mode: '', ports: [] },
    target: { serviceName: 'web', serviceUid: '', servicePortName: 'http', servicePort: 80, protocol: 'TCP', containerName: 'app', containerPort: 8080, agentPort: 9901, sharedWith: [] },
    clientSessionId: session,
    clientName: session === 'me' ? 'me@here' : 'alice@laptop',
    disposition: InterceptDisposition.ACTIVE,
    message: '',
    createdAt: 0,
    stats: undefined,
  };
}

function web(intercepts: InterceptInfo[] = [], ports = 1): WorkloadView {
  return {
    namespace: 'shop',
    name: 'web',
    kind: 'Deployment',
    readyReplicas: 1,
    replicas: 2,
    agentState: 'installed',
    ports: ports === 0 ? [] : [{ serviceName: 'web', servicePortName: 'http', servicePort: 80, containerName: 'app', containerPort: 8080 }],
    intercepts,
    containerEnv: new Map(),
  };
}

/** A TreeSource whose contents the test sets. */
class FakeSource implements TreeSource {
  phase = 'connected';
  connection: TreeSource['connection'] = { context: 'kind', namespace: 'shop', clusterServer: 'https://k:6443', sessionId: 'me' };
  namespaces = ['shop', 'other'];
  byNamespace = new Map<string, WorkloadView[]>([['shop', [web([intercept('web-shop', 'me'), intercept('alice', 'them', [{ name: 'x-user', value: 'alice' }])])]]]);
  workloads(ns: string): WorkloadView[] {
    return this.byNamespace.get(ns) ?? [];
  }
  onDidChange(_listener: () => void): () => void {
    return () => undefined;
  }
}

t.test('nothing while not connected (the welcome view shows instead)', (t) => {
  const source = new FakeSource();
  source.phase = 'disconnected';
  t.same(new WorkloadsTree(source).getChildren(), []);
  t.end();
});

t.test('context > namespaces > workloads > ports and intercepts', (t) => {
  const tree = new WorkloadsTree(new FakeSource());
  const [ctx, ...more] = tree.getChildren();
  t.same(more, []);
  t.match(ctx, { kind: 'context', label: 'kind', description: 'https://k:6443', collapsible: 'expanded' });
  const namespaces = tree.getChildren(ctx);
  t.same(namespaces.map((n) => [n.label, n.collapsible, n.description]), [
    ['shop', 'expanded', 'connected namespace'],
    ['other', 'collapsed', ''],
  ]);
  const [w] = tree.getChildren(namespaces[0]);
  t.match(w, { kind: 'workload', label: 'web', description: 'Deployment · 1/2 ready · agent installed · 2 intercepts', contextValue: 'workload.intercepted' });
  const children = tree.getChildren(w);
  t.same(children.map((c) => [c.kind, c.label, c.description, c.contextValue]), [
    ['port', 'web:80 (http) → app:8080', '', 'port'],
    ['intercept', 'web-shop', 'web:80 → localhost:8080 · yours · all traffic', 'intercept.mine'],
    ['intercept', 'alice', 'web:80 → localhost:8080 · by alice@laptop · x-user=alice', 'intercept.other'],
  ]);
  t.same(tree.getChildren(children[0]), [], 'ports are leaves');
  t.end();
});

const contextValues = [
  { name: 'no ports: nothing to intercept', view: web([], 0), want: 'workload.unexposed' },
  { name: 'ports and no intercept of ours', view: web([intercept('a', 'them')]), want: 'workload.interceptable' },
  { name: 'an intercept of ours', view: web([intercept('a', 'me')]), want: 'workload.intercepted' },
];
for (const c of contextValues) {
  t.test(`workload context value: ${c.name}`, (t) => {
    t.equal(workloadNode(c.view, 'me').contextValue, c.want);
    t.end();
  });
}

t.test('ids are stable, so VS Code keeps expansion across refreshes', (t) => {
  const ii = intercept('web-shop', 'me');
  t.equal(workloadNode(web(), 'me').id, 'workload/shop/Deployment/web');
  t.equal(interceptNode(web(), ii, 'me').id, 'intercept/me:web-shop');
  t.end();
});

t.test("an intercept's tooltip names the other Service ports it takes too", (t) => {
  const ii = intercept('web-shop', 'me');
  t.equal(interceptNode(web(), ii, 'me').tooltip, 'Intercept web-shop owned by me@here, all traffic');
  const shared = { ...ii, target: { ...ii.target!, sharedWith: ['web-lb:8080'] } };
  t.equal(interceptNode(web(), shared, 'me').tooltip, 'Intercept web-shop owned by me@here, all traffic; also takes web-lb:8080 (the same container port)');
  t.end();
});

t.test('headersText lists header matches', (t) => {
  t.equal(headersText(intercept('a', 'me', [{ name: 'x-a', value: '1' }, { name: 'x-b', value: '2' }])), 'x-a=1, x-b=2');
  t.equal(headersText(intercept('a', 'me')), '');
  const filtered = intercept('a', 'me', [{ name: 'x-a', value: '1' }]);
  t.equal(headersText({ ...filtered, spec: { ...filtered.spec!, httpPathPrefix: '/api/', httpMethods: ['GET', 'POST'] } }), 'x-a=1, path /api/*, method GET|POST', 'and a path prefix and methods');
  t.equal(headersText({ ...filtered, spec: { ...filtered.spec!, headers: [], httpPathPrefix: '/api/' } }), 'path /api/*', 'a path prefix alone');
  t.end();
});

t.test('a workload that vanished has no children', (t) => {
  const source = new FakeSource();
  const tree = new WorkloadsTree(source);
  const [ctx] = tree.getChildren();
  const [ns] = tree.getChildren(ctx);
  const [w] = tree.getChildren(ns);
  source.byNamespace.set('shop', []);
  t.same(tree.getChildren(w), []);
  t.end();
});

t.test('a change fires only when the rows VS Code has asked for look different', (t) => {
  const source = new FakeSource();
  let notify: () => void = () => undefined;
  source.onDidChange = (listener: () => void) => {
    notify = listener;
    return () => undefined;
  };
  const tree = new WorkloadsTree(source);
  let fired = 0;
  tree.onDidChange(() => fired++);
  const [ctx] = tree.getChildren();
  const [ns] = tree.getChildren(ctx);
  tree.getChildren(ns);
  notify();
  t.equal(fired, 1, 'the first change after rows were shown fires');
  notify();
  t.equal(fired, 1, 'the same rows again: no refresh');
  source.byNamespace.set('shop', [{ ...web(), readyReplicas: 2 }]);
  notify();
  t.equal(fired, 2, 'a description changed: refresh');
  source.namespaces = ['shop', 'other', 'new'];
  notify();
  t.equal(fired, 3, 'a namespace appeared: refresh');
  source.byNamespace.set('other', [web()]);
  notify();
  t.equal(fired, 3, 'rows under a namespace never expanded are not shown, so no refresh');
  t.end();
});

t.test('an ingest shows as one: its container, no traffic, no local port', (t) => {
  const base = intercept('web-shop-ingest', 'me');
  const node = interceptNode(web(), { ...base, spec: { ...base.spec!, mode: 'ingest', localPort: 0 } }, 'me');
  t.equal(node.description, 'ingest of app · yours · no traffic');
  t.match(node.tooltip, /^Ingest web-shop-ingest owned by me@here: the environment and volumes of container app; the app in the cluster keeps every request$/);
  t.equal(node.contextValue, 'intercept.mine', 'left like an intercept');
  t.end();
});

t.test('a replace shows as one: its container, where its ports go, that it does not run in the cluster', (t) => {
  const base = intercept('web-shop-replace', 'other');
  const spec = { ...base.spec!, mode: 'replace', localPort: 0, ports: [{ containerPort: 8080, localPort: 8080 }, { containerPort: 9090, localPort: 19090 }] };
  const node = interceptNode(web(), { ...base, spec }, 'me');
  t.equal(node.description, `replace of app → localhost:8080, 9090→19090 · by ${base.clientName} · not running in the cluster`);
  t.match(node.tooltip, /container app does not run in any replica of web; every connection to its ports goes to their workstation \(8080, 9090→19090\)$/);
  t.equal(node.contextValue, 'intercept.other');
  t.end();
});
