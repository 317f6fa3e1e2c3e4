import { AGENT_CONTAINER_NAME, LABELS } from '@telepresence-ts/core/contracts';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import t from 'tap';
import { AGENT_CONFIG_HASH_ANNOTATION, agentConfigHash } from '../../src/shared/agent-config-hash.js';
import {
  AGENT_CONFIG_VOLUME,
  AGENT_INIT_CONTAINER_NAME,
  AGENT_RESOURCES,
  hiddenPortName,
  injectAgent,
  isInjected,
  removeAgent,
} from '../../src/injector/inject.js';
import { diffToJsonPatch, jsonEqual } from '../../src/injector/patch.js';
import { withReplaced } from '@telepresence-ts/core/agent-config';
import { config, container, intercept, pod } from './samples.js';

// IANA_SVC_NAME as Kubernetes validates container port names.
const IANA_SVC_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/;

function find(p: V1Pod, name: string): V1Container {
  const c = p.spec?.containers.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no container ${name}`);
  return c;
}

t.test('hiddenPortName keeps within IANA_SVC_NAME', (t) => {
  const cases: ReadonlyArray<[string, string]> = [
    ['http', 'tm-http'],
    ['h', 'tm-h'],
    ['http-alt', 'tm-http-alt'],
    ['abcdefghijklmno', 'tm-abcdefghijkl'],
    // Cut after a hyphen: the trailing hyphen goes.
    ['abcdefghijk-lmn', 'tm-abcdefghijk'],
    ['abcdefghij--x', 'tm-abcdefghij'],
  ];
  for (const [name, want] of cases) {
    const got = hiddenPortName(name);
    t.equal(got, want, name);
    t.match(got, IANA_SVC_NAME, `${got} is a valid port name`);
  }
  t.end();
});

t.test('symbolic target port: the app port is hidden and the agent takes its name', (t) => {
  const input = pod([container('app', ['http:8080', 'debug:5005'])]);
  const frozen = structuredClone(input);
  const cfg = config({ app: [intercept('http', 8080, 9901)] });
  const out = injectAgent(input, cfg);

  t.strictSame(input, frozen, 'the input pod is not mutated');
  t.strictSame(find(out, 'app').ports, [
    { name: 'tm-http', containerPort: 8080, protocol: 'TCP' },
    { name: 'debug', containerPort: 5005, protocol: 'TCP' },
  ]);
  const agent = find(out, AGENT_CONTAINER_NAME);
  t.equal(agent.image, 'tp-local/traffic-agent:0.1.0');
  t.strictSame(agent.args, ['agent']);
  t.strictSame(agent.ports, [{ name: 'http', containerPort: 9901, protocol: 'TCP' }]);
  t.strictSame(agent.readinessProbe?.httpGet, { path: '/healthz', port: 9900 });
  t.strictSame(agent.volumeMounts, [{ name: AGENT_CONFIG_VOLUME, mountPath: '/etc/traffic-agent', readOnly: true }]);
  t.strictSame(agent.resources, AGENT_RESOURCES, 'the default resources: the configuration names none');
  t.equal(out.spec?.initContainers, undefined, 'no init container for symbolic ports');
  t.strictSame(out.spec?.volumes, [
    { name: AGENT_CONFIG_VOLUME, configMap: { name: 'telepresence-agents', items: [{ key: 'web', path: 'config.json' }] } },
  ]);
  t.equal(out.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION], agentConfigHash(cfg));
  t.equal(out.metadata?.labels?.[LABELS.agentInjected], 'true');
  t.equal(out.metadata?.labels?.[LABELS.workloadName], 'web');
  t.equal(out.metadata?.labels?.[LABELS.workloadKind], 'Deployment');
  t.equal(out.metadata?.labels?.['app'], 'web', 'existing labels kept');
  t.end();
});

t.test('the agent environment follows the contract', (t) => {
  const agent = find(injectAgent(pod([container('app', ['http:8080'])]), config({ app: [intercept('http', 8080, 9901)] })), AGENT_CONTAINER_NAME);
  const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef?.fieldPath}`]));
  t.strictSame(env, {
    TP_AGENT_NAME: 'web',
    TP_AGENT_NAMESPACE: 'fieldRef:metadata.namespace',
    TP_POD_NAME: 'fieldRef:metadata.name',
    TP_POD_IP: 'fieldRef:status.podIP',
    TP_MANAGER_HOST: 'traffic-manager.tp-system',
    TP_MANAGER_PORT: '8081',
    TP_AGENT_PORT: '9900',
    TP_LOG_LEVEL: 'info',
    TP_AGENT_CONFIG: '/etc/traffic-agent/config.json',
  });
  t.end();
});

t.test('the app container\'s env, envFrom and volume mounts go to the agent, prefixed and re-rooted', (t) => {
  const app = container('app', ['http:8080'], {
    env: [
      { name: 'GREETING', value: 'hello' },
      { name: 'MESSAGE', value: '$(GREETING), world' },
      { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
    ],
    envFrom: [{ configMapRef: { name: 'settings' } }],
    volumeMounts: [
      { name: 'config', mountPath: '/etc/config', readOnly: true },
      { name: 'scratch', mountPath: '/scratch' },
    ],
  });
  const input = pod([app, container('side', ['metrics:9100'], { env: [{ name: 'SIDE', value: '1' }] })]);
  const cfg = config({ app: [intercept('http', 8080, 9901)] });
  const out = injectAgent(input, cfg);
  const agent = find(out, AGENT_CONTAINER_NAME);
  t.strictSame(agent.env?.slice(0, 4), [
    { name: 'TP_APP0_GREETING', value: 'hello' },
    { name: 'TP_APP0_MESSAGE', value: '$(TP_APP0_GREETING), world' },
    { name: 'TP_APP0_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
    { name: 'TP_APP0_TELEPRESENCE_MOUNTS', value: '/etc/config:/scratch' },
  ], 'the served container\'s variables come first; the other container\'s are not copied');
  t.equal(agent.env?.[4]?.name, 'TP_AGENT_NAME', 'then the agent\'s own');
  t.strictSame(agent.envFrom, [{ configMapRef: { name: 'settings' }, prefix: 'TP_APP0_' }]);
  t.strictSame(agent.volumeMounts?.slice(1), [
    { name: 'config', mountPath: '/tel_app_mounts/app/etc/config', readOnly: true },
    { name: 'scratch', mountPath: '/tel_app_mounts/app/scratch' },
  ]);
  t.strictSame(find(out, 'app'), { ...app, ports: [{ name: 'tm-http', containerPort: 8080, protocol: 'TCP' }] }, 'the app container keeps its env and mounts');
  t.ok(jsonEqual(injectAgent(out, cfg), out), 'a second pass changes nothing');
  t.strictSame(removeAgent(out).spec, input.spec, 'removing the agent restores the containers');
  t.end();
});

t.test('numeric target port: an init container redirects it to an unnamed agent port', (t) => {
  const out = injectAgent(
    pod([container('app', [':8080', ':8443'])], { initContainers: [container('migrate', [])] }),
    config({ app: [intercept('', 8080, 9901, { numeric: true }), intercept('', 8443, 9902, { numeric: true, service: 'tls' })] }),
  );
  t.strictSame(find(out, 'app').ports, [
    { containerPort: 8080, protocol: 'TCP' },
    { containerPort: 8443, protocol: 'TCP' },
  ], 'app ports untouched');
  t.strictSame(find(out, AGENT_CONTAINER_NAME).ports, [
    { containerPort: 9901, protocol: 'TCP' },
    { containerPort: 9902, protocol: 'TCP' },
  ]);
  const inits = out.spec?.initContainers ?? [];
  t.strictSame(inits.map((c) => c.name), ['migrate', AGENT_INIT_CONTAINER_NAME], 'appended after the existing init containers');
  const init = inits[1];
  t.equal(init?.image, 'tp-local/traffic-agent:0.1.0');
  t.strictSame(init?.args, ['init']);
  t.strictSame(init?.securityContext, { capabilities: { add: ['NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false });
  t.equal(init?.env?.find((e) => e.name === 'TP_AGENT_INIT_PORTS')?.value, '8080:9901,8443:9902');
  t.end();
});

t.test("the agent container meets Pod Security's restricted level, and starts in a pod that sets uid 0", (t) => {
  const restricted = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
  const cfg = config({ app: [intercept('http', 8080, 9901)] });
  t.strictSame(find(injectAgent(pod([container('app', ['http:8080'])]), cfg), AGENT_CONTAINER_NAME).securityContext, restricted);
  const rootPod = pod([container('app', ['http:8080'])]);
  rootPod.spec = { ...rootPod.spec!, securityContext: { runAsUser: 0 } };
  const { runAsNonRoot: _left, ...withoutNonRoot } = restricted;
  t.strictSame(find(injectAgent(rootPod, cfg), AGENT_CONTAINER_NAME).securityContext, withoutNonRoot, 'no runAsNonRoot where the pod runs as uid 0');
  t.end();
});

t.test('two Services to the same numeric port: one agent port, one redirect', (t) => {
  const out = injectAgent(
    pod([container('app', [':8080'])]),
    config({ app: [intercept('', 8080, 9901, { numeric: true }), intercept('', 8080, 9901, { numeric: true, service: 'web-lb' })] }),
  );
  t.strictSame(find(out, AGENT_CONTAINER_NAME).ports, [{ containerPort: 9901, protocol: 'TCP' }]);
  const init = (out.spec?.initContainers ?? []).find((c) => c.name === AGENT_INIT_CONTAINER_NAME);
  t.equal(init?.env?.find((e) => e.name === 'TP_AGENT_INIT_PORTS')?.value, '8080:9901');
  t.end();
});

t.test('probes and hooks that named the hidden port get its number; others are kept', (t) => {
  const out = injectAgent(
    pod([
      container('app', ['http:8080', 'admin:8081'], {
        livenessProbe: { httpGet: { path: '/live', port: 'http' } },
        readinessProbe: { tcpSocket: { port: 'http' } },
        startupProbe: { httpGet: { path: '/s', port: 'admin' } },
        lifecycle: { preStop: { httpGet: { path: '/drain', port: 'http' } } },
      }),
    ]),
    config({ app: [intercept('http', 8080, 9901)] }),
  );
  const app = find(out, 'app');
  t.equal(app.livenessProbe?.httpGet?.port, 8080);
  t.equal(app.readinessProbe?.tcpSocket?.port, 8080);
  t.equal(app.startupProbe?.httpGet?.port, 'admin');
  t.equal(app.lifecycle?.preStop?.httpGet?.port, 8080);
  t.end();
});

t.test('two containers: each hides its own port', (t) => {
  const out = injectAgent(
    pod([container('app', ['http:8080']), container('grpc', ['grpc:50051'])]),
    config({ app: [intercept('http', 8080, 9901)], grpc: [intercept('grpc', 50051, 9902, { service: 'grpc' })] }),
  );
  t.equal(find(out, 'app').ports?.[0]?.name, 'tm-http');
  t.equal(find(out, 'grpc').ports?.[0]?.name, 'tm-grpc');
  t.strictSame(find(out, AGENT_CONTAINER_NAME).ports?.map((p) => p.name), ['http', 'grpc']);
  t.strictSame(out.spec?.containers.map((c) => c.name), ['app', 'grpc', AGENT_CONTAINER_NAME], 'agent last');
  t.end();
});

t.test('a configured port the container no longer has: the agent still serves the name', (t) => {
  const out = injectAgent(pod([container('app', ['web:8080'])]), config({ app: [intercept('http', 8080, 9901)] }));
  t.equal(find(out, 'app').ports?.[0]?.name, 'web');
  t.equal(find(out, AGENT_CONTAINER_NAME).ports?.[0]?.name, 'http');
  t.end();
});

t.test('two Services on one named port: one agent port', (t) => {
  const out = injectAgent(
    pod([container('app', ['http:8080'])]),
    config({ app: [intercept('http', 8080, 9901), intercept('http', 8080, 9902, { service: 'web-internal' })] }),
  );
  t.strictSame(find(out, AGENT_CONTAINER_NAME).ports, [{ name: 'http', containerPort: 9901, protocol: 'TCP' }]);
  t.end();
});

t.test('a hidden name already taken is a config error', (t) => {
  t.throws(() => injectAgent(pod([container('app', ['http:8080', 'tm-http:8081'])]), config({ app: [intercept('http', 8080, 9901)] })), {
    name: 'TpError',
    category: 'config',
    code: 'agent-injection-failed',
  });
  t.end();
});

t.test("the configuration's resources and log level go to the agent container; the default without them", (t) => {
  const p = pod([container('app', ['http:8080', ':9090'])]);
  const ics = { app: [intercept('http', 8080, 9901), intercept('', 9090, 9902, { numeric: true, service: 'm' })] };
  const resources = { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } };
  const set = injectAgent(p, config(ics, { resources, logLevel: 'debug' }));
  const agent = find(set, AGENT_CONTAINER_NAME);
  t.strictSame(agent.resources, resources, 'the configured resources, as they are');
  t.equal(agent.env?.find((e) => e.name === 'TP_LOG_LEVEL')?.value, 'debug', "the agent's log level");
  const init = set.spec?.initContainers?.find((c) => c.name === AGENT_INIT_CONTAINER_NAME);
  t.equal(init?.env?.find((e) => e.name === 'TP_LOG_LEVEL')?.value, 'debug', "the init container's too");
  t.notSame(init?.resources, resources, "the init container's resources are its own");
  t.strictSame(find(injectAgent(p, config(ics)), AGENT_CONTAINER_NAME).resources, AGENT_RESOURCES, 'none configured: the default');
  t.strictSame(AGENT_RESOURCES, { requests: { cpu: '25m', memory: '64Mi' } }, 'modest requests, no limits');
  const resized = injectAgent(set, config(ics, { resources: { limits: { memory: '512Mi' } }, logLevel: 'debug' }));
  t.strictSame(find(resized, AGENT_CONTAINER_NAME).resources, { limits: { memory: '512Mi' } }, 'a pod injected with other resources gets the new ones');
  t.not(resized.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION], set.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION], 'and another hash');
  t.end();
});

t.test('idempotent: the same config again changes nothing', (t) => {
  const cfg = config({ app: [intercept('http', 8080, 9901), intercept('', 9090, 9902, { numeric: true, service: 'm' })] });
  const once = injectAgent(pod([container('app', ['http:8080', ':9090'])]), cfg);
  const twice = injectAgent(once, cfg);
  t.strictSame(twice, once);
  t.strictSame(diffToJsonPatch(once, twice), []);
  t.end();
});

t.test('an old config is replaced as if injected afresh', (t) => {
  // (Without probes naming ports: a probe once rewritten to a number keeps it, see removeAgent.)
  const original = pod([container('app', ['http:8080', ':9090'])], {
    initContainers: [container('migrate', [])],
  });
  const cases: ReadonlyArray<{ name: string; from: ReturnType<typeof config>; to: ReturnType<typeof config> }> = [
    {
      name: 'symbolic to numeric',
      from: config({ app: [intercept('http', 8080, 9901)] }),
      to: config({ app: [intercept('', 9090, 9901, { numeric: true })] }),
    },
    {
      name: 'numeric to symbolic',
      from: config({ app: [intercept('', 9090, 9901, { numeric: true })] }),
      to: config({ app: [intercept('http', 8080, 9905)] }),
    },
    {
      name: 'new image and agent port',
      from: config({ app: [intercept('http', 8080, 9901), intercept('', 9090, 9902, { numeric: true })] }),
      to: config({ app: [intercept('http', 8080, 9911), intercept('', 9090, 9912, { numeric: true })] }, { agentImage: 'tp-local/traffic-agent:0.2.0' }),
    },
  ];
  for (const c of cases) {
    const stale = injectAgent(original, c.from);
    const again = injectAgent(stale, c.to);
    t.ok(jsonEqual(again, injectAgent(original, c.to)), c.name);
    t.equal(again.spec?.containers.filter((x) => x.name === AGENT_CONTAINER_NAME).length, 1, `${c.name}: one agent`);
    t.ok((again.spec?.initContainers ?? []).filter((x) => x.name === AGENT_INIT_CONTAINER_NAME).length <= 1, `${c.name}: at most one init`);
  }
  t.end();
});

t.test('removeAgent undoes an injection (probes keep their numbers)', (t) => {
  const original = pod([container('app', ['http:8080', ':9090'])], { initContainers: [container('migrate', [])] });
  const cfg = config({ app: [intercept('http', 8080, 9901), intercept('', 9090, 9902, { numeric: true })] });
  const injected = injectAgent(original, cfg);
  t.ok(isInjected(injected));
  const removed = removeAgent(injected);
  t.notOk(isInjected(removed));
  t.strictSame(removed.spec, original.spec);
  const withProbe = pod([container('app', ['http:8080'], { readinessProbe: { tcpSocket: { port: 'http' } } })]);
  const back = removeAgent(injectAgent(withProbe, config({ app: [intercept('http', 8080, 9901)] })));
  t.equal(back.spec?.containers[0]?.ports?.[0]?.name, 'http', 'the port name is restored');
  t.equal(back.spec?.containers[0]?.readinessProbe?.tcpSocket?.port, 8080, 'the probe keeps the number');
  t.notOk(isInjected(original));
  t.end();
});

t.test('a replaced container: the pod has no such container; the agent has its env, volumes and every port it served', (t) => {
  const app = container('app', ['http:8080', ':9090'], {
    env: [{ name: 'QUEUE_URL', value: 'amqp://queue' }],
    envFrom: [{ secretRef: { name: 'app-secrets' } }],
    volumeMounts: [{ name: 'data', mountPath: '/data' }],
    readinessProbe: { httpGet: { path: '/ready', port: 'http' } },
    livenessProbe: { tcpSocket: { port: 9090 } },
  });
  const sidecar = container('sidecar', ['metrics:7070']);
  const cfg = withReplaced(config({ app: [intercept('http', 8080, 9901), intercept('', 9090, 9902, { numeric: true, service: 'm' })] }), ['app']);
  const out = injectAgent(pod([app, sidecar]), cfg);

  t.strictSame(
    out.spec?.containers.map((c) => c.name),
    ['sidecar', AGENT_CONTAINER_NAME],
    'the app container is gone (its probes with it); the other containers stay',
  );
  t.strictSame(find(out, 'sidecar'), sidecar, 'a container not replaced is untouched');
  const agent = find(out, AGENT_CONTAINER_NAME);
  t.strictSame(agent.ports, [{ name: 'http', containerPort: 9901, protocol: 'TCP' }, { containerPort: 9902, protocol: 'TCP' }], "the symbolic port's name leads to the agent");
  t.strictSame(
    out.spec?.initContainers?.map((c) => [c.name, c.env?.find((e) => e.name === 'TP_AGENT_INIT_PORTS')?.value]),
    [[AGENT_INIT_CONTAINER_NAME, '9090:9902']],
    'the numeric port is redirected to the agent, which now receives what reaches it',
  );
  const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
  t.equal(env['TP_APP0_QUEUE_URL'], 'amqp://queue', "the app's environment, prefixed as for an intercept");
  t.strictSame(agent.envFrom, [{ secretRef: { name: 'app-secrets' }, prefix: 'TP_APP0_' }]);
  t.ok(
    agent.volumeMounts?.some((m) => m.name === 'data' && m.mountPath === '/tel_app_mounts/app/data'),
    "the app's volumes, under its mount point",
  );
  t.equal(out.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION], agentConfigHash(cfg));
  t.equal(diffToJsonPatch(out, injectAgent(out, cfg)).length, 0, 'a second pass changes nothing');
  t.end();
});

t.test('a replaced container whose hidden port name is taken: no conflict, the port is not hidden but removed', (t) => {
  const cfg = withReplaced(config({ app: [intercept('http', 8080, 9901)] }), ['app']);
  const out = injectAgent(pod([container('app', ['http:8080', 'tm-http:8081'])]), cfg);
  t.strictSame(
    out.spec?.containers.map((c) => c.name),
    [AGENT_CONTAINER_NAME],
  );
  t.end();
});
