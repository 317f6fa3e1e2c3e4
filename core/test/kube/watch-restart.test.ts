/**
 * The KubeWatcher adapter against a fake API server on a real HTTP socket (127.0.0.1:0): it
 * serves discovery, a Namespace list and watch with a history of changes, and answers a watch
 * from a resourceVersion whose history is gone with 410 Expired, as the real one does.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKubeWatcher } from '../../src/kube/client-node-watch.js';
import type { TpError } from '../../src/errors.js';
import type { KubeObject } from '../../src/kube/kube-api.js';

/** Fast restarts: the behaviour is the same at 2-30 s, the suite just does not wait for it. */
const FAST = { initialMs: 10, maxMs: 50 };

async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function fakeApiServer(t: Test) {
  let rv = 100;
  let compactedTo = rv;
  const namespaces = new Map<string, unknown>();
  const history: Array<{ rv: number; type: string; obj: unknown }> = [];
  const watches = new Set<ServerResponse>();
  const requests: URL[] = [];
  let failLists = 0;
  let heldLists: Array<() => void> | undefined;
  const line = (res: ServerResponse, type: string, object: unknown): void => void res.write(`${JSON.stringify({ type, object })}\n`);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://api');
    requests.push(url);
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname === '/api/v1') {
      return json(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'namespaces', singularName: 'namespace', namespaced: false, kind: 'Namespace', verbs: ['list', 'watch'] }] });
    }
    if (url.pathname !== '/api/v1/namespaces') return json(404, { kind: 'Status', code: 404 });
    if (url.searchParams.get('watch') !== 'true') {
      const answer = (): void => {
        if (failLists > 0) {
          failLists--;
          return json(500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcd is sad', code: 500 });
        }
        json(200, { kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items: [...namespaces.values()] });
      };
      if (heldLists !== undefined) heldLists.push(answer);
      else answer();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    if (from < compactedTo) {
      line(res, 'ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 });
      res.end();
      return;
    }
    for (const e of history) if (e.rv > from) line(res, e.type, e.obj);
    watches.add(res);
    res.on('close', () => watches.delete(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(join(tmpdir(), 'tp-watch-'));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        rmSync(dir, { recursive: true, force: true });
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const kubeconfig = join(dir, 'config.yaml');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      // client-node refuses plain http unless told that TLS is not checked.
      '    insecure-skip-tls-verify: true',
      'contexts:',
      '- name: fake',
      '  context: {cluster: fake, user: me}',
      'current-context: fake',
      'users:',
      '- name: me',
      '  user: {token: x}',
      '',
    ].join('\n'),
  );
  return {
    kubeconfig,
    requests,
    change: (type: 'ADDED' | 'MODIFIED' | 'DELETED', name: string) => {
      rv++;
      const obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, resourceVersion: String(rv) } };
      if (type === 'DELETED') namespaces.delete(name);
      else namespaces.set(name, obj);
      history.push({ rv, type, obj });
      for (const w of watches) line(w, type, obj);
    },
    watching: () => watches.size,
    /** Destroys every open watch's connection: a network failure. */
    breakWatches: () => {
      for (const w of [...watches]) {
        watches.delete(w);
        w.destroy();
      }
    },
    compact: () => (compactedTo = rv),
    failNextLists: (n: number) => (failLists = n),
    holdLists: () => (heldLists = []),
    heldLists: () => heldLists?.length ?? 0,
    releaseLists: () => {
      const held = heldLists ?? [];
      heldLists = undefined;
      for (const answer of held) answer();
    },
  };
}

function follow(kubeconfig: string) {
  const views: string[][] = [];
  const errors: TpError[] = [];
  const stop = createKubeWatcher({ kubeconfig }, FAST).watch<KubeObject>('Namespace', undefined, {
    onObjects: (objects) => views.push(objects.map((o) => o.metadata?.name ?? '').sort()),
    onError: (err) => errors.push(err),
  });
  const latest = (): string => (views.at(-1) ?? []).join(',');
  return { views, errors, stop, latest };
}

t.test('a namespace deleted while the watch was down leaves the view once the watcher lists again', async (t) => {
  const api = await fakeApiServer(t);
  api.change('ADDED', 'a');
  api.change('ADDED', 'b');
  api.change('ADDED', 'c');
  const w = follow(api.kubeconfig);
  t.teardown(w.stop);
  await eventually(() => w.latest() === 'a,b,c' && api.watching() === 1);

  api.breakWatches();
  api.change('DELETED', 'b');
  api.change('ADDED', 'd');
  api.compact();
  await eventually(() => w.latest() === 'a,c,d' && api.watching() === 1);
  t.pass('the view lost b and gained d');
  t.equal(w.errors.length, 1, 'the broken connection reported once');
  t.equal(w.errors[0]?.category, 'cluster');
  t.ok(
    api.requests.filter((u) => u.pathname === '/api/v1/namespaces' && u.searchParams.get('watch') !== 'true').length >= 2,
    'listed again after the 410',
  );
});

t.test('a failed list is reported and retried until the view arrives', async (t) => {
  const api = await fakeApiServer(t);
  api.change('ADDED', 'a');
  api.failNextLists(2);
  const w = follow(api.kubeconfig);
  t.teardown(w.stop);
  await eventually(() => w.latest() === 'a');
  t.equal(w.errors.length, 2, 'each failure reported');
  t.match(w.errors[0]?.message, /etcd is sad|500/);
});

t.test('a watcher stopped while its list is under way publishes nothing and leaves no watch open', async (t) => {
  const api = await fakeApiServer(t);
  api.change('ADDED', 'a');
  api.holdLists();
  const w = follow(api.kubeconfig);
  await eventually(() => api.heldLists() === 1);
  const before = w.views.length;
  w.stop();
  api.releaseLists();
  await eventually(() => api.requests.some((u) => u.searchParams.get('watch') === 'true'));
  await eventually(() => api.watching() === 0);
  t.equal(w.views.length, before, 'no view after stop');
  t.strictSame(w.errors, [], 'stopping is no failure');
});
