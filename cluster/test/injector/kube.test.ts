import { KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKubeAdapter } from '../../src/injector/kube.js';
import { createLogger } from '../../src/shared/log.js';
import { eventually } from './eventually.js';

/**
 * A fake API server on 127.0.0.1:0: lists and watches ConfigMaps (recording the queries) and
 * serves ReplicaSets. Enough of the API for the adapter, and it proves the real client-node calls.
 */
async function fakeApiServer(t: Test) {
  const queries: string[] = [];
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
