import t from 'tap';
import { buildAgentConfig } from '../../src/manager/agent-config-builder.js';
import { isStale, refreshAgentConfigs } from '../../src/manager/upgrade.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { FakeKube } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const old = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' } as const;
const now = { ...old, agentImage: 'tp-local/traffic-agent:0.2.0' };
const web = workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }]);
const svc = service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' });

function setup() {
  const kube = new FakeKube();
  kube.workloads.push(web);
  kube.services.push(svc);
  const lines: string[] = [];
  return { kube, lines, log: createLogger('traffic-manager', 'info', (l) => lines.push(l)) };
}

t.test('isStale: another agent image, manager address or log level', async (t) => {
  const config = buildAgentConfig(web, [svc], old);
  t.equal(isStale(config, old), false);
  t.equal(isStale(config, now), true);
  t.equal(isStale(config, { ...old, managerHost: 'traffic-manager.other' }), true);
  t.equal(isStale(config, { ...old, managerPort: 9000 }), true);
  t.equal(isStale(config, { ...old, logLevel: 'debug' }), true);
});

t.test("isStale: the agents' resources, unset as unset", async (t) => {
  const resources = { limits: { memory: '256Mi' }, requests: { cpu: '25m' } };
  const plain = buildAgentConfig(web, [svc], old);
  const limited = buildAgentConfig(web, [svc], { ...old, resources });
  t.equal(isStale(plain, old), false, 'an entry without resources, none set: current');
  t.equal(isStale(plain, { ...old, resources }), true, 'resources set since');
  t.equal(isStale(limited, { ...old, resources: { ...resources } }), false, 'the same resources');
  t.equal(isStale(limited, { ...old, resources: { ...resources, limits: { memory: '512Mi' } } }), true, 'another limit');
  t.equal(isStale(limited, old), true, 'resources unset since');
});

t.test("a manager whose agent log level changed rolls its agents: the entries are written again, at the agents' level", async (t) => {
  const { kube, log } = setup();
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, [svc], old)) });
  const build = { ...old, logLevel: 'debug', resources: { limits: { memory: '256Mi' } } } as const;
  const result = await refreshAgentConfigs({ kube, build, log });
  t.strictSame(result, { refreshed: ['default/web'], failed: [] });
  t.match(JSON.parse(kube.maps.get('default')?.['web'] ?? '{}'), { logLevel: 'debug', resources: { limits: { memory: '256Mi' } } });
});

t.test('an entry of an earlier version is built again and written; a current one is left alone', async (t) => {
  const { kube, lines, log } = setup();
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, [svc], old)) });
  kube.maps.set('other', { api: serializeAgentConfig(buildAgentConfig({ ...web, name: 'api', namespace: 'other' }, [{ ...svc, metadata: { ...svc.metadata, namespace: 'other' } }], now)) });
  const result = await refreshAgentConfigs({ kube, build: now, log });
  t.strictSame(result, { refreshed: ['default/web'], failed: [] });
  t.strictSame(kube.calls, ['apply default/web']);
  t.equal(kube.maps.get('default')?.['web'], serializeAgentConfig(buildAgentConfig(web, [svc], now)), 'the entry names the new agent image');
  t.match(lines.join(''), /brought an agent configuration to this version.*tp-local\/traffic-agent:0\.1\.0.*tp-local\/traffic-agent:0\.2\.0/);
});

t.test('entries that cannot be built again are left as they are and logged', async (t) => {
  const { kube, lines, log } = setup();
  const gone = buildAgentConfig({ ...web, name: 'gone' }, [svc], old);
  kube.maps.set('default', { gone: serializeAgentConfig(gone), bad: '{"version": 99}' });
  const result = await refreshAgentConfigs({ kube, build: now, log });
  t.strictSame(result.refreshed, []);
  t.match(result.failed, [{ entry: 'default/gone', error: 'its Deployment gone no longer exists' }, { entry: 'default/bad', error: /version/ }]);
  t.strictSame(kube.calls, [], 'nothing written');
  t.match(lines.join(''), /left an agent configuration of an earlier version as it is.*default\/gone/);
});
