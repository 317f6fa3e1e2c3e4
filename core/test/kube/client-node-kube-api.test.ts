import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeError, loadKubeConfig } from '../../src/kube/client-node-kube-api.js';
import { kubectlFor } from '../../src/kube/kube-api.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: dead
  context:
    cluster: dead
    user: me
    namespace: shop
current-context: dead
users:
- name: me
  user:
    token: x
`;

t.test('the hint for an unreachable cluster names the kubectl command that reaches the same one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-kubeconfig-'));
  const path = join(dir, 'dead.yaml');
  writeFileSync(path, KUBECONFIG);
  const { target } = loadKubeConfig({ kubeconfig: path });
  t.equal(target.kubeconfig, path, 'a --kubeconfig given is kept with the target');
  const err = kubeError(new Error('connect ECONNREFUSED 127.0.0.1:1'), target, 'listing pods');
  t.equal(err.code, 'cluster-unreachable');
  t.equal(err.hint, `check that \`kubectl --kubeconfig ${path} --context dead get namespaces\` works`);
});

t.test('kubectlFor', async (t) => {
  const cases = [
    { target: { context: 'kind-tp', namespace: 'x', server: 's' }, want: 'kubectl --context kind-tp' },
    { target: { context: 'c', namespace: 'x', server: 's', kubeconfig: '/home/al/k.yaml' }, want: 'kubectl --kubeconfig /home/al/k.yaml --context c' },
    { target: { context: 'c', namespace: 'x', server: 's', kubeconfig: '/home/al/my k.yaml' }, want: 'kubectl --kubeconfig "/home/al/my k.yaml" --context c' },
  ];
  for (const c of cases) t.equal(kubectlFor(c.target), c.want);
});
