import { KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKubeAdapter } from '../../src/injector/kube.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { eventually } from './eventually.js';

/**
 * A fake API server on 127.0.0.1:0: lists and watches ConfigMaps (recording the queries) and
 * serves ReplicaSets. For pre-injection, it also reads, creates and replaces one namespace's
 * agents ConfigMap (`stored`, with 409 on a stale resourceVersion), and serves namespace `shop`,
 * Deployment `shop/cart` and its Services; `forbidden` paths answer 403. Enough of the API for the
 * adapter, and it proves the real client-node calls.
 */
async function fakeApiServer(t: Test) {
  const queries: string[] = [];
  const writes: string[] = [];
  const forbidden = new Set<string>();
  let stored: { ns: string; data: Record<string, string>; rv: number } | undefined;
  const watchers: ServerResponse[] = [];
  let listFails = 0;
  let listed: Array<{ ns: string; data: Record<string, string>; rv: string }> = [{ ns: 'apps', data: { web: 'v1' }, rv: '10' }];
  let listRv = '10';
  const configMap = (ns: string, data: Record<string, string>, rv: string) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'telepresence-agents', namespace: ns, resourceVersion: rv },
    data,
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://api');
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (forbidden.has(url.pathname)) {
      return json(403, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${url.pathname} is forbidden`, code: 403 });
    }
    const one = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/telepresence-agents)?$/.exec(url.pathname);
    if (one !== null) {
      const ns = one[1] ?? '';
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const body = (text === '' ? {} : JSON.parse(text)) as { metadata?: { resourceVersion?: string }; data?: Record<string, string> };
        const here = stored?.ns === ns ? stored : undefined;
        if (req.method === 'GET') return here === undefined ? json(404, { kind: 'Status', code: 404, reason: 'NotFound' }) : json(200, configMap(ns, here.data, String(here.rv)));
        writes.push(`${req.method ?? ''} ${ns}`);
        if (req.method === 'POST' && here !== undefined) return json(409, { kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'already exists' });
        if (req.method === 'PUT' && body.metadata?.resourceVersion !== String(here?.rv)) return json(409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' });
        stored = { ns, data: body.data ?? {}, rv: (here?.rv ?? 100) + 1 };
        return json(req.method === 'POST' ? 201 : 200, configMap(ns, stored.data, String(stored.rv)));
      });
      return;
    }
    if (url.pathname === '/api/v1/namespaces/shop') {
      return json(200, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', annotations: { 'telepresence.io/inject-traffic-agent': 'enabled' }, labels: { team: 'a' } } });
    }
    if (url.pathname === '/api/v1/namespaces/shop/services') {
      return json(200, { apiVersion: 'v1', kind: 'ServiceList', metadata: {}, items: [{ metadata: { name: 'cart', namespace: 'shop' }, spec: { selector: { app: 'cart' } } }] });
    }
    if (url.pathname === '/apis/apps/v1/namespaces/shop/deployments/cart') {
      return json(200, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'cart', namespace: 'shop' }, spec: { selector: {}, template: {} } });
    }
    if (url.pathname === '/api/v1/configmaps') {
      queries.push(url.search);
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        watchers.push(res);
        return;
      }
      if (listFails > 0) {
        listFails--;
        return json(500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcd is sad', code: 500 });
      }
      return json(200, { kind: 'ConfigMapList', apiVersion: 'v1', metadata: { resourceVersion: listRv }, items: listed.map((c) => configMap(c.ns, c.data, c.rv)) });
    }
    const rs = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/replicasets\/([^/]+)$/.exec(url.pathname);
    if (rs !== null && rs[2] === 'web-5d8f7c6b9') {
      return json(200, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: rs[2],
          namespace: rs[1],
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd', controller: true }],
        },
      });
    }
    return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return {
    kc,
    queries,
    /** `POST ns` / `PUT ns` for each write of a namespace's agents ConfigMap. */
    writes,
    forbid: (path: string) => forbidden.add(path),
    /** The agents ConfigMap that the namespaced calls read and write (one namespace's). */
    setStored: (ns: string, data: Record<string, string>) => (stored = { ns, data, rv: 50 }),
    stored: () => stored,
    failNextLists: (n: number) => (listFails = n),
    /** Sends a watch event to every open watch. */
    send: (type: 'ADDED' | 'MODIFIED' | 'DELETED', ns: string, data: Record<string, string>, rv: string) => {
      for (const w of watchers) w.write(`${JSON.stringify({ type, object: configMap(ns, data, rv) })}\n`);
    },
    watching: () => watchers.filter((w) => !w.writableEnded && !w.destroyed).length,
    /** What the next list returns. */
    setListed: (items: typeof listed, rv: string) => {
      listed = items;
      listRv = rv;
    },
    /**
     * Ends every watch as the API server does when the client's resourceVersion is too old for
     * its history (410 Expired): the client must list again.
     */
    expireWatches: () => {
      for (const w of watchers.splice(0)) {
        w.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 } })}\n`);
        w.end();
      }
    },
  };
}

const log = createLogger('agent-injector', 'error', () => undefined);
/** Fast restarts: the behaviour is the same at 1-30 s, the suite just does not wait for it. */
const FAST = { initialMs: 10, maxMs: 50 };

t.test('caches the agents ConfigMaps from a list and a watch', async (t) => {
  const api = await fakeApiServer(t);
  const adapter = createKubeAdapter(log, api.kc);
  t.teardown(() => adapter.stop());
  t.notOk(adapter.synced(), 'not synced before start');
  await adapter.start();
  t.ok(adapter.synced());
  t.equal(adapter.kube.agentConfigEntry('apps', 'web'), 'v1');
  t.equal(adapter.kube.agentConfigEntry('apps', 'other'), undefined);
  t.equal(adapter.kube.agentConfigEntry('elsewhere', 'web'), undefined);
  t.match(decodeURIComponent(api.queries[0] ?? ''), /fieldSelector=metadata\.name=telepresence-agents/, 'lists by name only');

  await eventually(() => api.watching() === 1);
  api.send('MODIFIED', 'apps', { web: 'v2' }, '11');
  api.send('ADDED', 'shop', { cart: 'c1' }, '12');
  await eventually(() => adapter.kube.agentConfigEntry('apps', 'web') === 'v2' && adapter.kube.agentConfigEntry('shop', 'cart') === 'c1');
  api.send('DELETED', 'apps', { web: 'v2' }, '13');
  await eventually(() => adapter.kube.agentConfigEntry('apps', 'web') === undefined);
  t.pass('watch events update the cache');
});

t.test('a failed first list rejects start, and the adapter retries until it syncs', async (t) => {
  const api = await fakeApiServer(t);
  api.failNextLists(1);
  const adapter = createKubeAdapter(log, api.kc, FAST);
  t.teardown(() => adapter.stop());
  await t.rejects(adapter.start(), /etcd is sad|500/);
  t.notOk(adapter.synced());
  await eventually(() => adapter.synced(), 5000);
  t.equal(adapter.kube.agentConfigEntry('apps', 'web'), 'v1');
});

t.test('a map deleted while the watch was down leaves the cache when the watch expires and the adapter lists again', async (t) => {
  const api = await fakeApiServer(t);
  api.setListed(
    [
      { ns: 'apps', data: { web: 'v1' }, rv: '10' },
      { ns: 'shop', data: { cart: 'c1' }, rv: '11' },
    ],
    '11',
  );
  const adapter = createKubeAdapter(log, api.kc, FAST);
  t.teardown(() => adapter.stop());
  await adapter.start();
  await eventually(() => api.watching() === 1);
  t.equal(adapter.kube.agentConfigEntry('apps', 'web'), 'v1');
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), 'c1');

  // Meanwhile: apps's map was deleted and shop's changed, and the events are gone with the history.
  api.setListed([{ ns: 'shop', data: { cart: 'c2' }, rv: '13' }], '13');
  const lists = api.queries.filter((q) => !q.includes('watch=true')).length;
  api.expireWatches();
  await eventually(() => adapter.kube.agentConfigEntry('shop', 'cart') === 'c2');
  t.equal(adapter.kube.agentConfigEntry('apps', 'web'), undefined, 'the deleted map is gone from the cache');
  t.equal(api.queries.filter((q) => !q.includes('watch=true')).length, lists + 1, 'by listing again');
  await eventually(() => api.watching() === 1);
  t.ok(adapter.synced(), 'and watching again');
});

t.test('a stopped adapter leaves no watch open', async (t) => {
  const api = await fakeApiServer(t);
  const adapter = createKubeAdapter(log, api.kc, FAST);
  await adapter.start();
  await eventually(() => api.watching() === 1);
  await adapter.stop();
  await eventually(() => api.watching() === 0);
  t.notOk(adapter.synced());
});

t.test('replicaSetOwner reads the controlling owner', async (t) => {
  const api = await fakeApiServer(t);
  const adapter = createKubeAdapter(log, api.kc);
  t.strictSame(await adapter.kube.replicaSetOwner('apps', 'web-5d8f7c6b9'), { kind: 'Deployment', name: 'web' });
  await t.rejects(adapter.kube.replicaSetOwner('apps', 'gone'), { code: 404 });
});

t.test('addAgentConfigEntry writes the entry, which the cache answers at once', async (t) => {
  const api = await fakeApiServer(t);
  const clock = new FakeClock();
  const adapter = createKubeAdapter(log, api.kc, FAST, clock);
  t.teardown(() => adapter.stop());
  await adapter.start();
  await eventually(() => api.watching() === 1);

  t.strictSame(await adapter.kube.addAgentConfigEntry('shop', 'cart', 'c1'), { entry: 'c1', written: true });
  t.strictSame(api.writes, ['POST shop'], 'the missing map is created');
  t.strictSame(api.stored()?.data, { cart: 'c1' });
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), 'c1', 'answered before the watch reports it');

  t.strictSame(await adapter.kube.addAgentConfigEntry('shop', 'cart', 'c2'), { entry: 'c1', written: false }, 'an entry there is kept');
  t.strictSame(api.writes, ['POST shop'], 'and not written again');

  clock.advance(10_000);
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), undefined, 'not for longer than 10 s without the watch');
  t.strictSame(await adapter.kube.addAgentConfigEntry('shop', 'cart', 'c2'), { entry: 'c1', written: false });
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), 'c1');
  api.send('MODIFIED', 'shop', { other: 'o' }, '20');
  await eventually(() => adapter.kube.agentConfigEntry('shop', 'other') === 'o');
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), undefined, "once the watch reports the namespace's map, the cache alone answers");
});

t.test('addAgentConfigEntry adds to a map of other entries with its resourceVersion', async (t) => {
  const api = await fakeApiServer(t);
  const adapter = createKubeAdapter(log, api.kc);
  api.setStored('shop', { orders: 'o1' });
  t.strictSame(await adapter.kube.addAgentConfigEntry('shop', 'cart', 'c1'), { entry: 'c1', written: true });
  t.strictSame(api.writes, ['PUT shop']);
  t.strictSame(api.stored(), { ns: 'shop', data: { orders: 'o1', cart: 'c1' }, rv: 51 });
});

t.test('the reads of pre-injection', async (t) => {
  const api = await fakeApiServer(t);
  const adapter = createKubeAdapter(log, api.kc);
  t.strictSame(await adapter.kube.namespaceMeta('shop'), { annotations: { 'telepresence.io/inject-traffic-agent': 'enabled' }, labels: { team: 'a' } });
  t.match(await adapter.kube.readWorkload('shop', 'cart', 'Deployment'), { kind: 'Deployment', name: 'cart', namespace: 'shop', object: { metadata: { name: 'cart' } } });
  t.equal(await adapter.kube.readWorkload('shop', 'cart', 'StatefulSet'), undefined, 'none of that kind');
  t.match(await adapter.kube.listServices('shop'), [{ metadata: { name: 'cart' } }]);
  api.forbid('/api/v1/namespaces/shop');
  api.forbid('/api/v1/namespaces/shop/configmaps');
  await t.rejects(adapter.kube.namespaceMeta('shop'), { category: 'config', code: 'forbidden', message: /^the agent-injector may not read namespace shop/, hint: /agent-injector's RBAC/ });
  await t.rejects(adapter.kube.addAgentConfigEntry('shop', 'cart', 'c1'), { code: 'forbidden', message: /^the agent-injector may not write shop\/telepresence-agents/ });
  t.equal(adapter.kube.agentConfigEntry('shop', 'cart'), undefined, 'a failed write is not remembered');
});
