import type { V1Container } from '@kubernetes/client-node';
import t from 'tap';
import { appEnvironment, copyForAgent, isServiceLinkVar, renameReferences } from '../../src/shared/app-env.js';

t.test('renameReferences follows the kubelet syntax', (t) => {
  const up = (n: string): string | undefined => (n === 'A' ? 'P_A' : undefined);
  const cases: ReadonlyArray<[string, string]> = [
    ['$(A)', '$(P_A)'],
    ['x-$(A)-$(B)-y', 'x-$(P_A)-$(B)-y'],
    // `$$` escapes: `$$(A)` is the literal text `$(A)`, not a reference.
    ['$$(A)', '$$(A)'],
    ['$$$(A)', '$$$(P_A)'],
    ['cost: $5', 'cost: $5'],
    ['$', '$'],
    ['$(A', '$(A'],
    ['${A}', '${A}'],
  ];
  for (const [input, want] of cases) t.equal(renameReferences(input, up), want, input);
  t.end();
});

t.test('service-link variables are recognised', (t) => {
  for (const name of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBERNETES_SERVICE_PORT_HTTPS', 'WEB_PORT', 'WEB_PORT_80_TCP', 'WEB_PORT_80_TCP_ADDR', 'WEB_PORT_80_UDP_PROTO']) {
    t.ok(isServiceLinkVar(name), name);
  }
  for (const name of ['GREETING', 'DB_PASSWORD', 'PORT', 'SERVICE_HOST', 'WEB_PORT_X']) t.notOk(isServiceLinkVar(name), name);
  t.end();
});

const app: V1Container = {
  name: 'app',
  image: 'example/app:1',
  env: [
    { name: 'GREETING', value: 'hello' },
    { name: 'MESSAGE', value: '$(GREETING) from $(FROM_CONFIG) at $(KUBERNETES_SERVICE_HOST), $$(GREETING)' },
    { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
    { name: 'EARLY', value: '$(LATER)' },
    { name: 'LATER', value: 'x' },
  ],
  envFrom: [{ configMapRef: { name: 'settings' } }, { prefix: 'S_', secretRef: { name: 'more', optional: true } }],
  volumeMounts: [
    { name: 'config', mountPath: '/etc/config', readOnly: true },
    { name: 'data', mountPath: '/data', subPathExpr: '$(GREETING)', mountPropagation: 'HostToContainer' },
  ],
};

t.test('copyForAgent: prefixed env, references renamed as the kubelet would resolve them', (t) => {
  const copy = copyForAgent(app, 'TP_APP0_', '/tel_app_mounts/app');
  t.strictSame(copy.env, [
    { name: 'TP_APP0_GREETING', value: 'hello' },
    // GREETING is earlier; FROM_CONFIG may come from envFrom; the service link stays as it is.
    { name: 'TP_APP0_MESSAGE', value: '$(TP_APP0_GREETING) from $(TP_APP0_FROM_CONFIG) at $(KUBERNETES_SERVICE_HOST), $$(GREETING)' },
    { name: 'TP_APP0_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
    // LATER is defined after EARLY: unresolved for the app, so the agent's copy names the prefixed
    // LATER only because the container has envFrom (which may define it).
    { name: 'TP_APP0_EARLY', value: '$(TP_APP0_LATER)' },
    { name: 'TP_APP0_LATER', value: 'x' },
    { name: 'TP_APP0_TELEPRESENCE_MOUNTS', value: '/etc/config:/data' },
  ]);
  t.strictSame(copy.envFrom, [
    { configMapRef: { name: 'settings' }, prefix: 'TP_APP0_' },
    { prefix: 'TP_APP0_S_', secretRef: { name: 'more', optional: true } },
  ]);
  t.strictSame(copy.volumeMounts, [
    { name: 'config', mountPath: '/tel_app_mounts/app/etc/config', readOnly: true },
    { name: 'data', mountPath: '/tel_app_mounts/app/data', subPathExpr: '$(TP_APP0_GREETING)' },
  ]);
  t.end();
});

t.test('copyForAgent without envFrom leaves unknown references alone', (t) => {
  const copy = copyForAgent({ name: 'app', env: [{ name: 'A', value: '$(B) $(A)' }, { name: 'B', value: '$(A)' }] }, 'P_', '/m');
  t.strictSame(copy.env, [
    { name: 'P_A', value: '$(B) $(A)' },
    { name: 'P_B', value: '$(P_A)' },
  ]);
  t.strictSame(copy.volumeMounts, [], 'no mounts');
  t.end();
});

t.test('appEnvironment undoes the prefix; the agent image\'s own variables are not the app\'s', (t) => {
  const env = appEnvironment(
    { PATH: '/bin', NODE_VERSION: '18', TP_AGENT_PORT: '9900', TP_MANAGER_PORT: '8081', WEB_SERVICE_HOST: '10.96.0.9', TP_APP0_A: '1', TP_APP0_WEB_SERVICE_HOST: 'mine', TP_APP0_TELEPRESENCE_MOUNTS: '/a:/b', TP_APP1_A: 'other', TP_APP1_DB_PORT: '5432' },
    'TP_APP0_',
  );
  t.strictSame(env, { env: { WEB_SERVICE_HOST: 'mine', A: '1' }, mounts: ['/a', '/b'] });
  t.end();
});
