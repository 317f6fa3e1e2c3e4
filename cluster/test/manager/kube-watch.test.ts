/**
 * The manager's watches against a fake API server on a real HTTP socket (127.0.0.1:0) that keeps
 * a history of changes as the real one does: a list returns the current objects and their
 * resourceVersion, a watch from a resourceVersion replays what changed since (or says 410 Expired
 * once that history is compacted), and a watch without one starts with ADDED for what exists.
 *
 * The point of these tests is the gap: when a watch breaks, whatever changed before the client
 * watches again must still reach the manager, deletions included.
 */
import { KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClientNodeKubeApi, type AgentsConfigMapEvent, type PodEvent } from '../../src/manager/kube.js';
import { eventually } from '../injector/eventually.js';
import { FakeClock } from '../shared/fake-clock.js';

interface FakeObject {
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** Fast retries: the behaviour is the same at the manager's 1-30 s, the suite just does not wait. */
const FAST = { initialMs: 10, maxMs: 50 };

/** Which objects a list or watch query selects: the plural from the path, the namespace, the selectors. */
function selects(url: URL, plural: string, obj: FakeObject): boolean {
  const m = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?([a-z]+)$/.exec(url.pathname);
  if (m === null || m[2] !== plural) return false;
  if (m[1] !== undefined && m[1] !== obj.metadata.namespace) return false;
  const field = url.searchParams.get('fieldSelector');
  if (field !== null && field !== '' && field !== `metadata.name=${obj.metadata.name}`) return false;
  const labels = url.searchParams.get('labelSelector');
  if (labels !== null && labels !== '') {
    for (const term of labels.split(',')) {
      const [k, v] = term.split('=');
      if (k === undefined || obj.metadata.labels?.[k] !== v) return false;
    }
  }
  return true;
}

async function fakeApiServer(t: Test) {
  let rv = 100;
  /** Changes with a resourceVersion above this are still replayable; older ones answer 410. */
  let compactedTo = rv;
  const objects = new Map<string, { plural: string; obj: FakeObject }>();
  const history: Array<{ rv: number; plural: string; type: EventType; obj: FakeObject }> = [];
  const watches = new Set<{ url: URL; res: ServerResponse }>();
  const requests: URL[] = [];
  let failLists = 0;
  let heldLists: Array<() => void> | undefined;

  const line = (res: ServerResponse, type: string, object: unknown): void => {
    res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://api');
    requests.push(url);
    const plural = /([a-z]+)$/.exec(url.pathname)?.[1] ?? '';
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const current = [...objects.values()].filter((o) => o.plural === plural && selects(url, plural, o.obj)).map((o) => o.obj);
    if (url.searchParams.get('watch') !== 'true') {
      if (heldLists !== undefined) {
        heldLists.push(() => json(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items: current }));
        return;
      }
      if (failLists > 0) {
        failLists--;
        return json(500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcd is sad', code: 500 });
      }
      return json(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items: current });
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    const from = url.searchParams.get('resourceVersion');
    if (from === null || from === '') {
      // No resourceVersion: the current state as ADDED events, then the changes.
      for (const obj of current) line(res, 'ADDED', obj);
    } else if (Number(from) < compactedTo) {
      line(res, 'ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${compactedTo})`, reason: 'Expired', code: 410 });
      res.end();
      return;
    } else {
      for (const e of history) if (e.rv > Number(from) && e.plural === plural && selects(url, plural, e.obj)) line(res, e.type, e.obj);
    }
    const w = { url, res };
    watches.add(w);
    res.on('close', () => watches.delete(w));
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

  const change = (type: EventType, plural: string, obj: Omit<FakeObject, 'metadata'> & { metadata: Omit<FakeObject['metadata'], 'resourceVersion'> }): void => {
    rv++;
    const stored: FakeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    const key = `${plural}/${stored.metadata.namespace}/${stored.metadata.name}`;
    if (type === 'DELETED') objects.delete(key);
    else objects.set(key, { plural, obj: stored });
    history.push({ rv, plural, type, obj: stored });
    for (const w of watches) if (selects(w.url, plural, stored)) line(w.res, type, stored);
  };
  return {
    kc,
    requests,
    change,
    configMap: (type: EventType, namespace: string, data: Record<string, string>) =>
      change(type, 'configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace }, data }),
    pod: (type: EventType, namespace: string, name: string, labels: Record<string, string>) =>
      change(type, 'pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels }, status: { phase: 'Running' } }),
    watching: () => watches.size,
    /** Cuts every open watch: `reset` destroys the socket (a network failure), `end` ends it as the server does on its timeout. */
    breakWatches: (how: 'reset' | 'end') => {
      for (const w of [...watches]) {
        watches.delete(w);
        if (how === 'reset') w.res.destroy();
        else w.res.end();
      }
    },
    /** Forgets the history up to now: a watch from an older resourceVersion gets 410 and must list again. */
    compact: () => (compactedTo = rv),
    failNextLists: (n: number) => (failLists = n),
    /** Lists wait unanswered until `releaseLists()`. */
    holdLists: () => (heldLists = []),
    heldLists: () => heldLists?.length ?? 0,
    releaseLists: () => {
      const held = heldLists ?? [];
      heldLists = undefined;
      for (const answer of held) answer();
    },
    lists: (path: string) => requests.filter((u) => u.pathname === path && u.searchParams.get('watch') !== 'true').length,
  };
}

function configMapEvents(api: ClientNodeKubeApi): { events: AgentsConfigMapEvent[]; stop: () => void } {
  const events: AgentsConfigMapEvent[] = [];
  const stop = api.watchAgentConfigMaps((e) => events.push(e));
  return { events, stop };
}

const gaps: ReadonlyArray<{ name: string; how: 'reset' | 'end'; compact: boolean }> = [
  { name: 'a reset connection, history kept (resumes from its resourceVersion)', how: 'reset', compact: false },
  { name: 'a reset connection, history compacted (410: lists again)', how: 'reset', compact: true },
  { name: 'a watch the server ended, history kept', how: 'end', compact: false },
  { name: 'a watch the server ended, history compacted (410: lists again)', how: 'end', compact: true },
];

for (const gap of gaps) {
  t.test(`agents ConfigMaps changed while the watch was down are reported: ${gap.name}`, async (t) => {
    const server = await fakeApiServer(t);
    server.configMap('ADDED', 'apps', { web: 'v1' });
    server.configMap('ADDED', 'shop', { cart: 'c1' });
    server.configMap('ADDED', 'keep', { same: 's1' });
    const errors: string[] = [];
    const kube = new ClientNodeKubeApi(server.kc, (_path, err) => errors.push(String(err)), FAST);
    const { events, stop } = configMapEvents(kube);
    t.teardown(stop);

    await eventually(() => events.length === 3 && server.watching() === 1);
    t.strictSame(
      events.map((e) => [e.type, e.namespace]).sort(),
      [
        ['ADDED', 'apps'],
        ['ADDED', 'keep'],
        ['ADDED', 'shop'],
      ],
      'starts with ADDED for each existing map',
    );
    events.length = 0;
    const listsBefore = server.lists('/api/v1/configmaps');

    // The events of these changes are lost with the watch: the client learns of them only by
    // resuming from its resourceVersion or by listing again.
    server.breakWatches(gap.how);
    server.configMap('DELETED', 'apps', { web: 'v1' });
    server.configMap('MODIFIED', 'shop', { cart: 'c2' });
    server.configMap('ADDED', 'new', { fresh: 'f1' });
    if (gap.compact) server.compact();

    await eventually(() => events.length >= 3 && server.watching() === 1, 5000);
    t.strictSame(
      [...events].sort((a, b) => a.namespace.localeCompare(b.namespace)),
      [
        { type: 'DELETED', namespace: 'apps', data: {} },
        { type: 'ADDED', namespace: 'new', data: { fresh: 'f1' } },
        { type: 'MODIFIED', namespace: 'shop', data: { cart: 'c2' } },
      ],
      'the deleted map as DELETED, the changed one as MODIFIED, the new one as ADDED, and nothing of the unchanged one',
    );
    t.equal(
      server.lists('/api/v1/configmaps') - listsBefore,
      gap.compact ? 1 : 0,
      gap.compact ? 'listed again once the history was gone' : 'resumed from its resourceVersion, without a list',
    );
    if (gap.how === 'end') t.strictSame(errors, [], 'a watch the server ends is no failure');
    else t.ok(errors.length >= 1, 'a broken connection is reported');

    // And the watch goes on from there.
    server.configMap('DELETED', 'shop', { cart: 'c2' });
    await eventually(() => events.length === 4);
    t.strictSame(events[3], { type: 'DELETED', namespace: 'shop', data: {} });
  });
}

t.test('pods deleted while the watch was down are reported, and the label selector holds throughout', async (t) => {
  const server = await fakeApiServer(t);
  server.pod('ADDED', 'apps', 'web-1', { app: 'web' });
  server.pod('ADDED', 'apps', 'web-2', { app: 'web' });
  server.pod('ADDED', 'apps', 'db-1', { app: 'db' });
  const kube = new ClientNodeKubeApi(server.kc, () => undefined, FAST);
  const events: PodEvent[] = [];
  const stop = kube.watchPods('apps', (e) => events.push(e), { app: 'web' });
  t.teardown(stop);
  await eventually(() => events.length === 2 && server.watching() === 1);
  t.strictSame(events.map((e) => `${e.type} ${e.pod.metadata?.name}`).sort(), ['ADDED web-1', 'ADDED web-2']);
  events.length = 0;

  server.breakWatches('reset');
  server.pod('DELETED', 'apps', 'web-1', { app: 'web' });
  server.pod('DELETED', 'apps', 'db-1', { app: 'db' });
  server.compact();
  await eventually(() => events.length >= 1 && server.watching() === 1, 5000);
  t.strictSame(
    events.map((e) => `${e.type} ${e.pod.metadata?.name}`),
    ['DELETED web-1'],
    'the selected pod that went is reported; the unselected one never was',
  );
  const podQueries = server.requests.filter((u) => u.pathname === '/api/v1/namespaces/apps/pods');
  t.ok(podQueries.length >= 3, 'listed, watched, and after the break listed or watched again');
  t.ok(
    podQueries.every((u) => u.searchParams.get('labelSelector') === 'app=web'),
    'every list and watch carries the label selector',
  );
});

t.test('a failed list is retried until it succeeds, and reported', async (t) => {
  const server = await fakeApiServer(t);
  server.configMap('ADDED', 'apps', { web: 'v1' });
  server.failNextLists(2);
  const errors: string[] = [];
  const kube = new ClientNodeKubeApi(server.kc, (path, err) => errors.push(`${path}: ${String(err)}`), FAST);
  const { events, stop } = configMapEvents(kube);
  t.teardown(stop);
  await eventually(() => events.length === 1, 5000);
  t.strictSame(events[0], { type: 'ADDED', namespace: 'apps', data: { web: 'v1' } });
  t.equal(errors.length, 2, 'each failed list reported once');
  t.match(errors[0], /^\/api\/v1\/configmaps: /, 'naming the path');
});

t.test('a stopped watch stops for good: no retry pending, no error reported', async (t) => {
  const server = await fakeApiServer(t);
  server.configMap('ADDED', 'apps', { web: 'v1' });
  const errors: unknown[] = [];
  // The retries wait on this clock, which never moves: a retry scheduled after stop() would show as a pending timer.
  const clock = new FakeClock();
  const kube = new ClientNodeKubeApi(server.kc, (_p, err) => errors.push(err), { ...FAST, clock });
  const { events, stop } = configMapEvents(kube);
  await eventually(() => events.length === 1 && server.watching() === 1);
  stop();
  await eventually(() => server.watching() === 0);
  t.equal(clock.pending, 0, 'no retry scheduled');
  t.strictSame(errors, [], 'stopping is no failure');
  server.configMap('MODIFIED', 'apps', { web: 'v2' });
  t.equal(events.length, 1, 'no event after stop');
});

t.test('a watch stopped while its list is under way delivers nothing and leaves no watch open', async (t) => {
  const server = await fakeApiServer(t);
  server.configMap('ADDED', 'apps', { web: 'v1' });
  server.holdLists();
  const kube = new ClientNodeKubeApi(server.kc, () => undefined, FAST);
  const { events, stop } = configMapEvents(kube);
  await eventually(() => server.heldLists() === 1);
  stop();
  server.releaseLists();
  // client-node's informer opens its watch once the list is answered, stopped or not.
  await eventually(() => server.requests.some((u) => u.searchParams.get('watch') === 'true'));
  await eventually(() => server.watching() === 0);
  t.equal(events.length, 0, 'the listed map is not reported after stop');
});

t.test('the pods with a label are listed in every namespace at once (remove-agents waits on this list)', async (t) => {
  const server = await fakeApiServer(t);
  server.pod('ADDED', 'apps', 'web-1', { app: 'web', 'telepresence.io/agent-injected': 'true' });
  server.pod('ADDED', 'shop', 'api-1', { app: 'api', 'telepresence.io/agent-injected': 'true' });
  server.pod('ADDED', 'shop', 'db-1', { app: 'db' });
  const kube = new ClientNodeKubeApi(server.kc, () => undefined, FAST);
  const pods = await kube.listPodsWithLabels({ 'telepresence.io/agent-injected': 'true' });
  t.strictSame(pods.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`).sort(), ['apps/web-1', 'shop/api-1']);
  t.strictSame(
    server.requests.map((u) => `${u.pathname}?${u.searchParams.get('labelSelector')}`),
    ['/api/v1/pods?telepresence.io/agent-injected=true'],
    'one list, of every namespace, selected on the server',
  );
});
