import t from 'tap';
import { checkProgram, imageTag, installCommand } from '../../src/doctor/installation.js';
import { FakeDoctorCluster, programDeployment, programPod } from './fixtures/fake-doctor.js';

t.test('imageTag reads the tag, not a registry port or a digest', (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['tp-local/traffic-manager:1.2.3', '1.2.3'],
    ['registry:5000/tp/traffic-manager:0.1.0', '0.1.0'],
    ['registry:5000/tp/traffic-manager', undefined],
    ['tp/traffic-manager@sha256:abc', undefined],
    ['tp/traffic-manager:1.2@sha256:abc', '1.2'],
  ];
  for (const [image, tag] of cases) t.equal(imageTag(image), tag, image);
  t.end();
});

t.test('installCommand names the manager namespace only when it is not the default', (t) => {
  t.equal(installCommand('tp-system'), 'kubectl telepresence install');
  t.equal(installCommand('tp-x'), 'kubectl telepresence install --manager-namespace tp-x');
  t.end();
});

t.test('a ready program of the same major.minor is ok, with its version and pods', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.add(programDeployment('traffic-manager', '1.2.0'));
  const f = await checkProgram(kube, 'tp-system', 'traffic-manager', '1.2.3');
  t.equal(f.status, 'ok');
  t.equal(f.message, 'v1.2.0, 1 of 1 pods ready');
  t.equal(f.group, 'cluster');
});

t.test('a missing program fails with the install command', async (t) => {
  const f = await checkProgram(new FakeDoctorCluster(), 'tp-x', 'agent-injector', '1.2.3');
  t.equal(f.status, 'fail');
  t.match(f.message, /not installed in namespace tp-x of context kind-tp/);
  t.equal(f.fix, 'kubectl telepresence install --manager-namespace tp-x');
});

t.test('a program scaled to 0 fails with the scale command for the same context', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.add(programDeployment('agent-injector', '1.2.3', 0, 0));
  const f = await checkProgram(kube, 'tp-system', 'agent-injector', '1.2.3');
  t.equal(f.status, 'fail');
  t.equal(f.message, 'deployment/agent-injector is scaled to 0 replicas');
  t.equal(f.fix, 'kubectl --context kind-tp -n tp-system scale deployment/agent-injector --replicas=1');
});

t.test('a program without a ready pod fails naming why its pod waits', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.add(programDeployment('traffic-manager', '1.2.3', 0));
  kube.add(programPod('traffic-manager', false, 'ImagePullBackOff'));
  const f = await checkProgram(kube, 'tp-system', 'traffic-manager', '1.2.3');
  t.equal(f.status, 'fail');
  t.equal(f.message, 'no ready pod (0 of 1): traffic-manager-abc: ImagePullBackOff');
  t.equal(f.fix, 'kubectl --context kind-tp -n tp-system describe pods -l app.kubernetes.io/name=traffic-manager');
});

t.test('another major.minor fails: connect would refuse it', async (t) => {
  const kube = new FakeDoctorCluster();
  kube.add(programDeployment('traffic-manager', '1.3.0'));
  const f = await checkProgram(kube, 'tp-system', 'traffic-manager', '1.2.3');
  t.equal(f.status, 'fail');
  t.match(f.message, /v1\.3\.0 .*but this client is v1\.2\.3: their major\.minor versions must match/);
  t.equal(f.fix, 'kubectl telepresence install');
});

t.test('an image without a version tag is a warning, not a guess', async (t) => {
  const kube = new FakeDoctorCluster();
  const d = programDeployment('traffic-manager', 'dev') as { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
  kube.add(d as never);
  const f = await checkProgram(kube, 'tp-system', 'traffic-manager', '1.2.3');
  t.equal(f.status, 'warn');
  t.match(f.message, /image tp-local\/traffic-manager:dev has no version tag/);
});
