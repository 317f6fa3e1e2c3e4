import t from 'tap';
import { WATCHED_KINDS, watchPath, type WatchedKind } from '../../src/kube/watch.js';

const cases: ReadonlyArray<{ kind: WatchedKind; namespace: string | undefined; want: string }> = [
  { kind: 'Namespace', namespace: undefined, want: '/api/v1/namespaces' },
  { kind: 'Namespace', namespace: 'shop', want: '/api/v1/namespaces' },
  { kind: 'Service', namespace: 'shop', want: '/api/v1/namespaces/shop/services' },
  { kind: 'Service', namespace: undefined, want: '/api/v1/services' },
  { kind: 'Deployment', namespace: 'shop', want: '/apis/apps/v1/namespaces/shop/deployments' },
  { kind: 'ReplicaSet', namespace: 'shop', want: '/apis/apps/v1/namespaces/shop/replicasets' },
  { kind: 'StatefulSet', namespace: undefined, want: '/apis/apps/v1/statefulsets' },
];
for (const c of cases) {
  t.test(`watchPath(${c.kind}, ${String(c.namespace)})`, (t) => {
    t.equal(watchPath(c.kind, c.namespace), c.want);
    t.end();
  });
}

t.test('only Namespace is cluster-scoped', (t) => {
  t.same(
    Object.entries(WATCHED_KINDS)
      .filter(([, k]) => !k.namespaced)
      .map(([name]) => name),
    ['Namespace'],
  );
  t.end();
});
