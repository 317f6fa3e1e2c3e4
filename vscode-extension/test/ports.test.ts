import t from 'tap';
import { interceptablePorts, portId, portLabel, type ServiceObject, type WorkloadObject } from '../src/ports.js';

function workload(containers: NonNullable<NonNullable<NonNullable<WorkloadObject['spec']>['template']>['spec']>['containers']): WorkloadObject {
  return { metadata: { name: 'web', namespace: 'shop' }, spec: { template: { metadata: { labels: { app: 'web', tier: 'front' } }, spec: { containers } } } };
}
function svc(name: string, ports: NonNullable<ServiceObject['spec']>['ports'], selector: Record<string, string> = { app: 'web' }): ServiceObject {
  return { metadata: { name, namespace: 'shop' }, spec: { selector, ports } };
}

const app = { name: 'app', ports: [{ name: 'http', containerPort: 8080 }] };
const side = { name: 'side', ports: [{ containerPort: 9090 }, { name: 'metrics', containerPort: 9100 }] };

const cases: ReadonlyArray<{ name: string; containers: Array<typeof app | typeof side>; services: ServiceObject[]; want: string[] }> = [
  { name: 'targetPort by name reaches the container port of that name', containers: [app, side], services: [svc('web', [{ name: 'http', port: 80, targetPort: 'http' }])], want: ['web:80 (http) → app:8080'] },
  { name: 'targetPort by number reaches the container declaring it', containers: [app, side], services: [svc('web', [{ port: 9090, targetPort: 9090 }])], want: ['web:9090 → side:9090'] },
  { name: 'an undeclared number goes to the first container', containers: [app, side], services: [svc('web', [{ port: 81, targetPort: 7000 }])], want: ['web:81 → app:7000'] },
  { name: 'no targetPort means the service port', containers: [app], services: [svc('web', [{ port: 8080 }])], want: ['web:8080 → app:8080'] },
  { name: 'a name no container has reaches nothing', containers: [app], services: [svc('web', [{ port: 80, targetPort: 'grpc' }])], want: [] },
  { name: 'UDP ports are skipped', containers: [app], services: [svc('web', [{ port: 53, targetPort: 53, protocol: 'UDP' }])], want: [] },
  { name: 'Services that do not select the pods are ignored', containers: [app], services: [svc('other', [{ port: 80, targetPort: 'http' }], { app: 'other' })], want: [] },
  { name: 'an empty selector selects nothing', containers: [app], services: [svc('all', [{ port: 80, targetPort: 'http' }], {})], want: [] },
  {
    name: 'several Services are listed by name',
    containers: [app, side],
    services: [svc('web-b', [{ name: 'metrics', port: 9100, targetPort: 'metrics' }]), svc('web-a', [{ name: 'http', port: 80, targetPort: 'http' }])],
    want: ['web-a:80 (http) → app:8080', 'web-b:9100 (metrics) → side:9100'],
  },
];
for (const c of cases) {
  t.test(c.name, (t) => {
    t.same(interceptablePorts(workload(c.containers), c.services).map(portLabel), c.want);
    t.end();
  });
}

t.test('portId is the name when the port has one, else the number', (t) => {
  const [named, numbered] = interceptablePorts(workload([app, side]), [svc('web', [{ name: 'http', port: 80, targetPort: 'http' }, { port: 9090, targetPort: 9090 }])]);
  t.equal(portId(named!), 'http');
  t.equal(portId(numbered!), '9090');
  t.end();
});
