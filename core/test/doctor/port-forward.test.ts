import t from 'tap';
import { checkPortForward } from '../../src/doctor/port-forward.js';
import { TpError } from '../../src/errors.js';
import { CLUSTER_INFO, FakeDoctorCluster, programDeployment, programPod } from './fixtures/fake-doctor.js';

function withManager(): FakeDoctorCluster {
  const kube = new FakeDoctorCluster();
  kube.add(programDeployment('traffic-manager', '1.2.3'));
  kube.add(programPod('traffic-manager', true));
  return kube;
}

t.test('forwards to the ready manager pod\'s API port, as connect does, and hands on the ClusterInfo', async (t) => {
  const kube = withManager();
  const r = await checkPortForward(kube, 'tp-system', '1.2.9');
  t.strictSame(kube.forwards, ['tp-system/traffic-manager-abc:8081']);
  t.equal(r.finding.status, 'ok');
  t.equal(r.finding.message, 'port-forward to tp-system/traffic-manager-abc:8081: /healthz answered 200, traffic-manager v1.2.3 over gRPC');
  t.strictSame(r.clusterInfo, CLUSTER_INFO);
});

t.test('no manager pod: not tried, and the reason is what connect would say', async (t) => {
  const r = await checkPortForward(new FakeDoctorCluster(), 'tp-system', '1.2.3');
  t.equal(r.finding.status, 'fail');
  t.match(r.finding.message, /^not tried: the traffic-manager is not installed in namespace tp-system/);
  t.equal(r.finding.fix, 'run: kubectl telepresence install');
  t.equal(r.clusterInfo, undefined);
  t.match(r.clusterInfoError, /not tried/);
});

t.test('a forward the API server forbids fails naming the right', async (t) => {
  const kube = withManager();
  kube.manager = new TpError('config', 'kube-forbidden', 'pods "traffic-manager-abc" is forbidden: cannot create resource "pods/portforward"');
  const r = await checkPortForward(kube, 'tp-system', '1.2.3');
  t.equal(r.finding.status, 'fail');
  t.match(r.finding.message, /port-forward to tp-system\/traffic-manager-abc:8081 failed: .*forbidden/);
  t.equal(r.finding.fix, 'you need create pods/portforward in tp-system (see rbac-connect)');
});

t.test('an unhealthy manager or another major.minor fails', async (t) => {
  const unhealthy = withManager();
  unhealthy.manager = { health: 503, version: '1.2.3', clusterInfo: CLUSTER_INFO };
  const a = await checkPortForward(unhealthy, 'tp-system', '1.2.3');
  t.equal(a.finding.status, 'fail');
  t.match(a.finding.message, /\/healthz answered 503/);
  const old = withManager();
  old.manager = { health: 200, version: '1.1.0', clusterInfo: CLUSTER_INFO };
  const b = await checkPortForward(old, 'tp-system', '1.2.3');
  t.equal(b.finding.status, 'fail');
  t.match(b.finding.message, /traffic-manager is v1.1.0 and this client v1.2.3/);
  t.equal(b.finding.fix, 'kubectl telepresence install');
});
