import t from 'tap';
import { buildAgentConfig, resolveTarget, resolvedSpec, toInterceptTarget, type BuildOptions } from '../../src/manager/agent-config-builder.js';
import { parseAgentConfig, serializeAgentConfig, type AgentIntercept } from '@telepresence-ts/core/agent-config';
import { service, workload } from './fixtures.js';

const opts: BuildOptions = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' };

/** A compact view of a config's connections: "svc:port(name) -> container:port(name) @agent numeric?". */
function connections(w: ReturnType<typeof workload>, services: ReturnType<typeof service>[]): string[] {
  const config = buildAgentConfig(w, services, opts);
  // Whatever we build, the readers (injector, agent) must accept.
  parseAgentConfig(config.agentName, serializeAgentConfig(config));
  return config.containers.flatMap((c) =>
    c.intercepts.map((i: AgentIntercept) => `${i.serviceName}:${i.servicePort}(${i.servicePortName}) -> ${c.name}:${i.containerPort}(${i.containerPortName}) @${i.agentPort}${i.targetPortNumeric ? ' numeric' : ''}`),
  );
}

const app = { name: 'app', image: 'app', ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] };
const side = { name: 'side', image: 'side', ports: [{ name: 'metrics', containerPort: 9100 }] };

t.test('connections between Service ports and container ports', async (t) => {
  const cases: ReadonlyArray<{ name: string; services: ReturnType<typeof service>[]; containers?: (typeof app)[]; want: string[] }> = [
    {
      name: 'symbolic targetPort: the container port of that name',
      services: [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })],
      want: ['web:80(http) -> app:8080(http) @9901'],
    },
    {
      name: 'numeric targetPort: the container declaring it',
      services: [service('web', [{ port: 80, targetPort: 9100 }], { app: 'web' })],
      containers: [app, side],
      want: ['web:80() -> side:9100(metrics) @9901 numeric'],
    },
    {
      name: 'numeric targetPort nobody declares: the first container',
      services: [service('web', [{ port: 80, targetPort: 3000 }], { app: 'web' })],
      containers: [app, side],
      want: ['web:80() -> app:3000() @9901 numeric'],
    },
    {
      name: 'absent targetPort means the Service port',
      services: [service('web', [{ port: 8080 }], { app: 'web' })],
      want: ['web:8080() -> app:8080(http) @9901 numeric'],
    },
    {
      name: 'every port of every matching Service, Services by name; agent ports count up',
      services: [
        service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }),
        service('admin', [{ name: 'metrics', port: 9100, targetPort: 'metrics' }], { app: 'web' }),
      ],
      containers: [app, side],
      want: ['web:80(http) -> app:8080(http) @9902', 'web:90(grpc) -> app:9090(grpc) @9903', 'admin:9100(metrics) -> side:9100(metrics) @9901'],
    },
    {
      name: 'Services selecting other pods, selecting nothing, or UDP ports are ignored',
      services: [
        service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'dns', port: 53, protocol: 'UDP' }], { app: 'web' }),
        service('other', [{ port: 80 }], { app: 'other' }),
        service('external', [{ port: 80 }], undefined),
      ],
      want: ['web:80(http) -> app:8080(http) @9901'],
    },
    {
      name: 'Service ports that lead to the same app port share its agent port, by name or by number',
      services: [
        service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }),
        service('web-lb', [{ port: 8080 }, { name: 'alt', port: 81, targetPort: 8080 }], { app: 'web' }),
      ],
      want: [
        'web:80(http) -> app:8080(http) @9901',
        'web:90(grpc) -> app:9090(grpc) @9902',
        'web-lb:8080() -> app:8080(http) @9901 numeric',
        'web-lb:81(alt) -> app:8080(http) @9901 numeric',
      ],
    },
    {
      name: 'a named targetPort no container has makes no connection',
      services: [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'x', port: 81, targetPort: 'nope' }], { app: 'web' })],
      want: ['web:80(http) -> app:8080(http) @9901'],
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      t.strictSame(connections(workload('web', c.containers ?? [app]), c.services), c.want);
    });
  }
});

t.test('the configuration around the connections', async (t) => {
  const config = buildAgentConfig(workload('web', [app, side], { kind: 'StatefulSet', namespace: 'shop' }), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' }, 'shop')], opts);
  t.strictSame(config, {
    version: 1,
    agentName: 'web',
    namespace: 'shop',
    workloadName: 'web',
    workloadKind: 'StatefulSet',
    agentImage: 'tp-local/traffic-agent:0.1.0',
    managerHost: 'traffic-manager.tp-system',
    managerPort: 8081,
    agentApiPort: 9900,
    logLevel: 'info',
    containers: [
      {
        name: 'app',
        intercepts: [
          {
            serviceName: 'web',
            serviceUid: 'uid-web',
            servicePortName: 'http',
            servicePort: 80,
            protocol: 'TCP',
            targetPortNumeric: false,
            containerPortName: 'http',
            containerPort: 8080,
            agentPort: 9901,
          },
        ],
        mountPoint: '/tel_app_mounts/app',
      },
    ],
  });
  t.equal(
    serializeAgentConfig(buildAgentConfig(workload('web', [app, side], { kind: 'StatefulSet', namespace: 'shop' }), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' }, 'shop')], opts)),
    serializeAgentConfig(config),
    'the same inputs give the same text',
  );
});

t.test("the agents' settings: their log level, and their resources only when set", async (t) => {
  const w = workload('web', [app]);
  const svc = service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' });
  const plain = buildAgentConfig(w, [svc], opts);
  t.equal(plain.logLevel, 'info');
  t.notOk('resources' in plain, 'no resources key when none are set, so that entries stay as they were');
  const resources = { limits: { memory: '256Mi' }, requests: { cpu: '50m' } };
  const set = buildAgentConfig(w, [svc], { ...opts, logLevel: 'debug', resources });
  t.equal(set.logLevel, 'debug', "BuildOptions' log level is the agents'");
  t.strictSame(set.resources, resources);
  t.strictSame(parseAgentConfig('web', serializeAgentConfig(set)), set, 'readers take it');
});

t.test('readers refuse an agent port given to two different app ports', (t) => {
  const config = buildAgentConfig(workload('web', [app]), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' })], opts);
  const grpc = config.containers[0]?.intercepts[1];
  if (grpc === undefined) throw new Error('no grpc connection');
  grpc.agentPort = 9901;
  t.throws(() => parseAgentConfig(config.agentName, serializeAgentConfig(config)), { message: /agent port 9901 is used for two different app ports/ });
  t.end();
});

t.test('no-service', async (t) => {
  t.throws(() => buildAgentConfig(workload('web', [app]), [service('other', [{ port: 80 }], { app: 'other' })], opts), {
    category: 'user',
    code: 'no-service',
    message: 'deployment/web has no Service selecting its pods (labels app=web), so it has nothing to intercept',
  });
  t.throws(() => buildAgentConfig(workload('web', [app]), [service('web', [{ port: 80, targetPort: 'nope' }], { app: 'web' })], opts), {
    code: 'no-service',
    message: 'no TCP port of the Services of deployment/web (web) leads to a port of its containers',
  });
});

t.test('resolveTarget of an ingest: the container, whatever its ports', async (t) => {
  const config = buildAgentConfig(
    workload('web', [app, side]),
    [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }), service('admin', [{ port: 9100, targetPort: 9100 }], { app: 'web' })],
    opts,
  );
  const ingest = { serviceName: '', servicePort: '', containerName: '', mode: 'ingest' };
  t.equal(resolveTarget(config, { ...ingest, containerName: 'side' }).container.name, 'side', 'the container named');
  t.equal(resolveTarget(config, { ...ingest, containerName: 'app' }).container.name, 'app', 'one with several ports');
  t.throws(() => resolveTarget(config, ingest), { code: 'ambiguous-container', message: 'deployment/web has 2 containers behind its Services; choose one with --container <name>: app, side' });
  t.throws(() => resolveTarget(config, { ...ingest, containerName: 'db' }), { code: 'unknown-container', hint: 'e.g. --container app' });
  const one = buildAgentConfig(workload('web', [app]), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' })], opts);
  t.equal(resolveTarget(one, ingest).container.name, 'app', 'the only container needs no name, however many ports it has');
});

t.test('resolveTarget', async (t) => {
  // web: http 80 -> app:8080, grpc 90 -> app:9090; web-internal: http 80 -> app:8080; admin: 9100 -> side:9100
  const config = buildAgentConfig(
    workload('web', [app, side]),
    [
      service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }),
      service('web-internal', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' }),
      service('admin', [{ port: 9100, targetPort: 9100 }], { app: 'web' }),
    ],
    opts,
  );
  const none = { serviceName: '', servicePort: '', containerName: '' };
  const cases: ReadonlyArray<{ name: string; spec: Partial<typeof none>; want: string } | { name: string; spec: Partial<typeof none>; code: string; message: string; hint: string }> = [
    {
      name: 'several ports: ambiguous-port lists each in CLI syntax',
      spec: {},
      code: 'ambiguous-port',
      message:
        'deployment/web has 4 interceptable ports; choose one with --port <local>:<port>: http (service web, 80 -> container app:8080), grpc (service web, 90 -> container app:9090), http (service web-internal, 80 -> container app:8080), 9100 (service admin, 9100 -> container side:9100)',
      hint: 'e.g. --port 8080:http',
    },
    {
      name: 'one port name in two Services: ambiguous-service',
      spec: { servicePort: 'http' },
      code: 'ambiguous-service',
      message: 'deployment/web has 2 Services with port http; choose one with --service <name>: web (80 -> container app:8080), web-internal (80 -> container app:8080)',
      hint: 'e.g. --service web',
    },
    { name: 'port by name and service', spec: { servicePort: 'http', serviceName: 'web-internal' }, want: 'web-internal:80 app:8080 @9902' },
    { name: 'port by number', spec: { servicePort: '90' }, want: 'web:90 app:9090 @9903' },
    { name: 'unnamed port by number', spec: { servicePort: '9100' }, want: 'admin:9100 side:9100 @9901' },
    { name: 'service with one port', spec: { serviceName: 'admin' }, want: 'admin:9100 side:9100 @9901' },
    { name: 'container with one port', spec: { containerName: 'side' }, want: 'admin:9100 side:9100 @9901' },
    {
      name: 'service with two ports: ambiguous-port within it',
      spec: { serviceName: 'web' },
      code: 'ambiguous-port',
      message: 'deployment/web has 2 interceptable ports; choose one with --port <local>:<port>: http (service web, 80 -> container app:8080), grpc (service web, 90 -> container app:9090)',
      hint: 'e.g. --port 8080:http',
    },
    {
      name: 'unknown service',
      spec: { serviceName: 'nope' },
      code: 'unknown-service',
      message: 'deployment/web is not selected by a Service named "nope"; its Services: admin, web, web-internal',
      hint: 'choose one with --service <name>, e.g. --service admin',
    },
    {
      name: 'unknown port',
      spec: { serviceName: 'web', servicePort: '81' },
      code: 'unknown-port',
      message:
        'service web of deployment/web has no port "81" (a Service port\'s name or number); choose one with --port <local>:<port>: http (service web, 80 -> container app:8080), grpc (service web, 90 -> container app:9090)',
      hint: 'e.g. --port 8080:http',
    },
    {
      name: 'unknown container',
      spec: { containerName: 'db' },
      code: 'unknown-container',
      message: 'no interceptable port of deployment/web is served by a container "db"; choose one with --container <name>: app, side',
      hint: 'e.g. --container app',
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const run = () => resolveTarget(config, { ...none, ...c.spec });
      if ('want' in c) {
        const r = run();
        t.equal(`${r.intercept.serviceName}:${r.intercept.servicePort} ${r.container.name}:${r.intercept.containerPort} @${r.intercept.agentPort}`, c.want);
      } else {
        t.throws(run, { category: 'user', code: c.code, message: c.message, hint: c.hint });
      }
    });
  }
});

t.test('ambiguous-container: one port served by two containers', async (t) => {
  const a = { name: 'a', image: 'a', ports: [{ name: 'http', containerPort: 8080 }] };
  const b = { name: 'b', image: 'b', ports: [{ name: 'http2', containerPort: 8081 }] };
  const config = buildAgentConfig(workload('web', [a, b]), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })], opts);
  // Two containers behind one Service port name cannot come from one Service; build it by hand.
  const first = config.containers[0]!;
  config.containers.push({ name: 'b', mountPoint: '/tel_app_mounts/b', intercepts: [{ ...first.intercepts[0]!, containerPort: 8081, agentPort: 9902 }] });
  t.throws(() => resolveTarget(config, { serviceName: '', servicePort: '', containerName: '' }), {
    code: 'ambiguous-container',
    message: 'port http of deployment/web is served by 2 containers; choose one with --container <name>: a, b',
  });
});

t.test('resolvedSpec and toInterceptTarget fill in every optional field', async (t) => {
  const config = buildAgentConfig(workload('web', [app]), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })], opts);
  const r = resolveTarget(config, { serviceName: '', servicePort: '', containerName: '' });
  const spec = { name: '', namespace: 'default', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 3000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
  t.strictSame(resolvedSpec(spec, config, r), { ...spec, name: 'web-default', workloadKind: 'Deployment', serviceName: 'web', servicePort: 'http', containerName: 'app' });
  t.strictSame(toInterceptTarget(r, config), {
    serviceName: 'web',
    serviceUid: 'uid-web',
    servicePortName: 'http',
    servicePort: 80,
    protocol: 'TCP',
    containerName: 'app',
    containerPort: 8080,
    agentPort: 9901,
    sharedWith: [],
  });
});

t.test('toInterceptTarget names the other Service ports that lead to the same app port', async (t) => {
  const config = buildAgentConfig(
    workload('web', [app]),
    [
      service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }),
      service('web-lb', [{ port: 8080 }, { name: 'alt', port: 81, targetPort: 8080 }], { app: 'web' }),
    ],
    opts,
  );
  const target = (serviceName: string, servicePort: string) => toInterceptTarget(resolveTarget(config, { serviceName, servicePort, containerName: '' }), config);
  t.strictSame(target('web-lb', '8080').sharedWith, ['web:http', 'web-lb:alt']);
  t.strictSame(target('web', 'http').sharedWith, ['web-lb:8080', 'web-lb:alt']);
  t.strictSame(target('web', 'grpc').sharedWith, [], 'a port of its own');
});

t.test('a replace: the container, every port its Services reach, each to its local port', async (t) => {
  const config = buildAgentConfig(
    workload('web', [app, side]),
    [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' }), service('admin', [{ port: 9100, targetPort: 9100 }], { app: 'web' })],
    opts,
  );
  const replace = { name: '', namespace: 'default', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: 'app', localPort: 0, headers: [], httpPathPrefix: '', httpMethods: [], mode: 'replace', ports: [{ containerPort: 9090, localPort: 19090 }] };
  const r = resolveTarget(config, replace);
  t.equal(r.container.name, 'app', 'the container named, as for an ingest');
  t.throws(() => resolveTarget(config, { ...replace, containerName: '' }), { code: 'ambiguous-container' });
  const resolved = resolvedSpec(replace, config, r);
  t.equal(resolved.name, 'web-default-replace', 'a name of its own by default');
  t.strictSame(resolved.ports, [
    { containerPort: 8080, localPort: 8080 },
    { containerPort: 9090, localPort: 19090 },
  ], 'every port of the container; one not mapped keeps its number');
  t.throws(() => resolvedSpec({ ...replace, ports: [{ containerPort: 9100, localPort: 9100 }] }, config, r), {
    code: 'unknown-container-port',
    category: 'user',
    message: 'container app of deployment/web is not reached on port 9100 by any of its Services; its ports: 8080, 9090',
    hint: /--port 8080:8080/,
  });
  t.equal(resolvedSpec({ ...replace, mode: 'ingest' }, config, r).name, 'web-default-ingest');
});

t.test('a replace that would send two container ports to one local port: refused', async (t) => {
  const config = buildAgentConfig(workload('web', [app]), [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' })], opts);
  const replace = { name: '', namespace: 'default', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 0, headers: [], httpPathPrefix: '', httpMethods: [], mode: 'replace', ports: [{ containerPort: 9090, localPort: 8080 }] };
  t.throws(() => resolvedSpec(replace, config, resolveTarget(config, replace)), {
    code: 'bad-port',
    message: 'container ports 8080 and 9090 of app would both go to local port 8080',
    hint: 'move the one that keeps its number too, e.g. --port 18080:8080',
  });
});
