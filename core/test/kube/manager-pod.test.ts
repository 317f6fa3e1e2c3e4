import t from 'tap';
import { findManagerPod } from '../../src/kube/manager-pod.js';
import { FakeKube } from '../fixtures/fake-kube.js';

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'traffic-manager', namespace: 'tp-system' },
  spec: { selector: { matchLabels: { 'app.kubernetes.io/name': 'traffic-manager' } } },
};

function pod(name: string, ready: boolean, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'tp-system', labels: { 'app.kubernetes.io/name': 'traffic-manager' }, ...extra },
    spec: { containers: [{ name: 'traffic-manager', ports: [{ name: 'api', containerPort: 8181 }] }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

t.test('no Deployment: manager-not-installed, with the install hint', async (t) => {
  await t.rejects(findManagerPod(new FakeKube(), 'tp-system'), { category: 'user', code: 'manager-not-installed', hint: 'run: kubectl telepresence install' });
});

t.test('no Ready pod: manager-not-ready', async (t) => {
  const kube = new FakeKube();
  kube.add(deployment);
  kube.add(pod('tm-1', false));
  await t.rejects(findManagerPod(kube, 'tp-system'), { category: 'cluster', code: 'manager-not-ready' });
});

t.test('picks a Ready pod that is not being deleted, and its api port', async (t) => {
  const kube = new FakeKube();
  kube.add(deployment);
  kube.add(pod('tm-old', true, { deletionTimestamp: '2026-01-01T00:00:00Z' }));
  kube.add(pod('tm-1', false));
  kube.add(pod('tm-2', true));
  t.strictSame(await findManagerPod(kube, 'tp-system'), { name: 'tm-2', port: 8181 });
});
