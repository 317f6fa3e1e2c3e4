import t from 'tap';
import { runDoctor } from '../../src/doctor/doctor.js';
import { TpError } from '../../src/errors.js';
import { makeInjectorTls } from '../../src/install/certs.js';
import { webhookConfiguration } from '../../src/install/manifests.js';
import type { KubeObject } from '../../src/kube/kube-api.js';
import { OUTBOUND_DEFAULTS } from '../../src/outbound/outbound.js';
import { FakeDoctorCluster, fakeHost, programDeployment, programPod } from './fixtures/fake-doctor.js';

const tls = makeInjectorTls('agent-injector', 'tp-system');

/** A cluster where everything is in place, and namespace default exists without a PSA label. */
function healthyCluster(): FakeDoctorCluster {
  const kube = new FakeDoctorCluster();
  for (const name of ['traffic-manager', 'agent-injector']) {
    kube.add(programDeployment(name, '1.2.3'));
    kube.add(programPod(name, true));
  }
  kube.add(webhookConfiguration({ namespace: 'tp-system', managerImage: 'm', injectorImage: 'i', agentImage: 'a' }, tls.caCert));
  kube.add({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'ai-1', namespace: 'tp-system', labels: { 'kubernetes.io/service-name': 'agent-injector' } },
    ports: [{ name: 'https', port: 8443 }],
    endpoints: [{ addresses: ['10.244.0.9'], targetRef: { kind: 'Pod', name: 'agent-injector-abc' } }],
  } as KubeObject);
  kube.add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  return kube;
}

const options = { managerNamespace: 'tp-system', clientVersion: '1.2.3', outbound: OUTBOUND_DEFAULTS };
const now = (): Date => new Date();

const ORDER = ['traffic-manager', 'agent-injector', 'webhook', 'pod-security', 'rbac-connect', 'rbac-intercept', 'rbac-volumes', 'rbac-install', 'port-forward', 'volumes', 'tun-device', 'network-daemon', 'subnets', 'dns'];

t.test('a healthy set-up: every check ok, in a fixed order, in the context\'s namespace', async (t) => {
  const kube = healthyCluster();
  const report = await runDoctor({ cluster: kube, host: fakeHost(), now }, options);
  t.strictSame(
    report.findings.map((f) => [f.check, f.status]),
    ORDER.map((c) => [c, 'ok']),
  );
  t.strictSame(report.scope, { context: 'kind-tp', server: 'https://127.0.0.1:6443', namespace: 'default', managerNamespace: 'tp-system' });
  t.ok(kube.asked.includes('list deployments.apps in default'), 'rights asked for the context namespace');
});

t.test('--namespace chooses where workloads are checked', async (t) => {
  const kube = healthyCluster();
  const report = await runDoctor({ cluster: kube, host: fakeHost(), now }, { ...options, namespace: 'shop' });
  t.equal(report.scope?.namespace, 'shop');
  t.match(report.findings.find((f) => f.check === 'pod-security'), { status: 'fail', message: 'namespace shop does not exist' });
});

t.test('--outbound=false leaves out the outbound checks, not volumes', async (t) => {
  const report = await runDoctor({ cluster: healthyCluster(), host: fakeHost({ files: [] }), now }, { ...options, outbound: { ...OUTBOUND_DEFAULTS, disabled: true } });
  const checks = report.findings.map((f) => f.check);
  t.strictSame(checks.slice(-1), ['volumes']);
  t.notOk(checks.includes('tun-device'));
});

t.test('the subnets check uses the ClusterInfo the port-forward fetched; without a manager it is not checked', async (t) => {
  const kube = healthyCluster();
  kube.objects.delete('Deployment/tp-system/traffic-manager');
  const report = await runDoctor({ cluster: kube, host: fakeHost(), now }, options);
  t.match(report.findings.find((f) => f.check === 'traffic-manager'), { status: 'fail' });
  t.match(report.findings.find((f) => f.check === 'port-forward'), { status: 'fail', message: /^not tried/ });
  t.match(report.findings.find((f) => f.check === 'subnets'), { status: 'warn', message: /^not checked: .*not tried: the traffic-manager is not installed/ });
  t.strictSame(kube.forwards, []);
});

t.test('an unreachable cluster is one finding; the workstation is still checked', async (t) => {
  const kube = healthyCluster();
  kube.unreachable = new TpError('cluster', 'cluster-unreachable', 'cannot reach the cluster at https://127.0.0.1:6443: ECONNREFUSED', { hint: 'check that `kubectl --context kind-tp get namespaces` works' });
  const report = await runDoctor({ cluster: kube, host: fakeHost(), now }, options);
  t.strictSame(
    report.findings.map((f) => f.check),
    ['cluster', 'volumes', 'tun-device', 'network-daemon', 'subnets', 'dns'],
  );
  t.match(report.findings[0], { status: 'fail', message: /^cannot check the cluster: cannot reach the cluster/, fix: /kubectl --context kind-tp get namespaces/ });
  t.equal(report.scope, undefined);
});

t.test('a kubeconfig that cannot be read: the same, with its error', async (t) => {
  const report = await runDoctor(
    { cluster: undefined, clusterError: new TpError('config', 'bad-kubeconfig', 'cannot read the kubeconfig: ENOENT', { hint: 'check --kubeconfig or $KUBECONFIG' }), host: fakeHost(), now },
    options,
  );
  t.match(report.findings[0], { check: 'cluster', status: 'fail', message: 'cannot check the cluster: cannot read the kubeconfig: ENOENT', fix: 'check --kubeconfig or $KUBECONFIG' });
});

t.test('a check that throws becomes its own failed finding; the others still report', async (t) => {
  const kube = healthyCluster();
  const get = kube.get.bind(kube);
  kube.get = async (ref) => {
    if (ref.kind === 'Namespace') throw new TpError('cluster', 'kube-api-error', 'reading namespace/default: etcd timeout');
    return get(ref);
  };
  const report = await runDoctor({ cluster: kube, host: fakeHost(), now }, options);
  t.match(report.findings.find((f) => f.check === 'pod-security'), { status: 'fail', message: 'reading namespace/default: etcd timeout' });
  t.equal(report.findings.filter((f) => f.status === 'fail').length, 1);
});

t.test('a bad --never-proxy is refused before anything is checked', async (t) => {
  const kube = healthyCluster();
  await t.rejects(runDoctor({ cluster: kube, host: fakeHost(), now }, { ...options, outbound: { ...OUTBOUND_DEFAULTS, neverProxy: ['10.0.0.0/99'] } }), { code: 'bad-subnet' });
  t.strictSame(kube.asked, []);
});
