import t from 'tap';
import { checkRbac, grantCommand, rightsChecks } from '../../src/doctor/rbac.js';
import { FakeDoctorCluster } from './fixtures/fake-doctor.js';

t.test('every right the client uses is asked about, in the namespace it is used in', async (t) => {
  const kube = new FakeDoctorCluster();
  const findings = await checkRbac(kube, 'tp-system', 'shop');
  t.strictSame(
    findings.map((f) => [f.check, f.status]),
    [
      ['rbac-connect', 'ok'],
      ['rbac-intercept', 'ok'],
      ['rbac-volumes', 'ok'],
      ['rbac-install', 'ok'],
    ],
  );
  for (const q of ['create pods/portforward in tp-system', 'list pods in tp-system', 'get deployments.apps in tp-system', 'list replicasets.apps in shop', 'get configmaps in shop', 'create pods/portforward in shop', 'create mutatingwebhookconfigurations.admissionregistration.k8s.io']) {
    t.ok(kube.asked.includes(q), q);
  }
  t.equal(kube.asked.length, rightsChecks('tp-system', 'shop').flatMap((g) => g.questions).length);
});

t.test('a missing right of connect fails, with the Role and RoleBinding an admin creates for this user', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.denied.add('create pods/portforward in tp-system');
  kube.denied.add('list pods in tp-system');
  const [connect] = await checkRbac(kube, 'tp-system', 'shop');
  t.equal(connect?.status, 'fail');
  t.equal(connect?.message, 'you may not list pods in tp-system, create pods/portforward in tp-system: needed for connect (find and port-forward to the traffic-manager in tp-system)');
  t.equal(
    connect?.fix,
    'an admin runs: kubectl -n tp-system create role telepresence-user --verb=list,create --resource=pods,pods/portforward && kubectl -n tp-system create rolebinding telepresence-user --role=telepresence-user --user=alice',
  );
});

t.test('port-forward in the workload namespace is a warning: intercepts are relayed without it', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.denied.add('create pods/portforward in shop');
  const volumes = (await checkRbac(kube, 'tp-system', 'shop')).find((f) => f.check === 'rbac-volumes');
  t.equal(volumes?.status, 'warn');
  t.match(volumes?.message, /relayed by the traffic-manager and come without volumes/);
});

t.test('install rights are a warning, and their fix is an admin running install', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.denied.add('create namespaces');
  kube.denied.add('create clusterroles.rbac.authorization.k8s.io');
  const install = (await checkRbac(kube, 'tp-x', 'shop')).find((f) => f.check === 'rbac-install');
  t.equal(install?.status, 'warn');
  t.match(install?.message, /you may not create namespaces, create clusterroles.rbac.authorization.k8s.io: needed for install/);
  t.equal(install?.fix, 'ask a cluster admin to run `kubectl telepresence install --manager-namespace tp-x`');
});

t.test('grantCommand: one Role per namespace; <you> when the API server does not say who', (t) => {
  const cmd = grantCommand(
    [
      { verb: 'list', resource: 'deployments', group: 'apps', namespace: 'shop' },
      { verb: 'create', resource: 'pods', subresource: 'portforward', namespace: 'tp-system' },
      { verb: 'create', resource: 'namespaces' },
    ],
    undefined,
  );
  t.equal(
    cmd,
    'an admin runs: kubectl -n shop create role telepresence-user --verb=list --resource=deployments.apps && kubectl -n shop create rolebinding telepresence-user --role=telepresence-user --user=<you> && ' +
      'kubectl -n tp-system create role telepresence-user --verb=create --resource=pods/portforward && kubectl -n tp-system create rolebinding telepresence-user --role=telepresence-user --user=<you>',
  );
  t.equal(grantCommand([{ verb: 'create', resource: 'namespaces' }], 'bob'), '');
  t.end();
});
