import t from 'tap';
import { checkPodSecurity, numericTargetServices, PSA_ENFORCE_LABEL } from '../../src/doctor/pod-security.js';
import { TpError } from '../../src/errors.js';
import type { V1Service } from '../../src/kube/kube-types.js';
import { FakeDoctorCluster } from './fixtures/fake-doctor.js';

function ns(labels: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop', ...labels } } };
}

function service(name: string, targetPort: string | number | undefined): V1Service & { apiVersion: string; kind: string } {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { selector: { app: name }, ports: [{ port: 80, ...(targetPort === undefined ? {} : { targetPort: targetPort }) }] } };
}

t.test('numericTargetServices: a number, a numeric string or no targetPort (then the port) needs the init container', (t) => {
  const list = [service('named', 'http'), service('number', 8080), service('string', '8080'), service('absent', undefined)];
  t.strictSame(numericTargetServices(list), ['absent', 'number', 'string']);
  const headless = { ...service('external', 8080), spec: { type: 'ExternalName', ports: [{ port: 80, targetPort: 8080 as never }] } };
  t.strictSame(numericTargetServices([headless]), [], 'a Service without a selector selects no workload');
  t.end();
});

const cases: Array<{ name: string; labels: Record<string, string>; services: Array<[string, string | number]>; status: string; message: RegExp }> = [
  { name: 'no label', labels: {}, services: [['web', 8080]], status: 'ok', message: /no pod-security.kubernetes.io\/enforce label/ },
  { name: 'privileged', labels: { [PSA_ENFORCE_LABEL]: 'privileged' }, services: [['web', 8080]], status: 'ok', message: /enforce=privileged/ },
  { name: 'restricted, only named targetPorts', labels: { [PSA_ENFORCE_LABEL]: 'restricted' }, services: [['web', 'http']], status: 'warn', message: /level restricted refuses the agent's init container .*no Service here has one/ },
  { name: 'baseline with a numeric targetPort', labels: { [PSA_ENFORCE_LABEL]: 'baseline' }, services: [['web', 8080], ['api', 'http']], status: 'fail', message: /level baseline refuses .*Services web have one/ },
];

for (const c of cases) {
  t.test(`Pod Security: ${c.name}`, async (t) => {
    const kube = new FakeDoctorCluster();
    kube.add(ns(c.labels));
    for (const [name, port] of c.services) kube.add(service(name, port));
    const f = await checkPodSecurity(kube, 'shop');
    t.equal(f.status, c.status);
    t.match(f.message, c.message);
    if (c.status !== 'ok') t.match(f.fix, `kubectl --context kind-tp label namespace shop ${PSA_ENFORCE_LABEL}=privileged --overwrite`);
  });
}

t.test('a missing namespace fails; an unreadable one is a warning', async (t) => {
  const missing = await checkPodSecurity(new FakeDoctorCluster(), 'nope');
  t.equal(missing.status, 'fail');
  t.equal(missing.message, 'namespace nope does not exist');
  const forbidden = new FakeDoctorCluster();
  forbidden.get = async () => {
    throw new TpError('config', 'kube-forbidden', 'namespaces "shop" is forbidden');
  };
  const f = await checkPodSecurity(forbidden, 'shop');
  t.equal(f.status, 'warn');
  t.match(f.message, /cannot read namespace shop's labels/);
});
