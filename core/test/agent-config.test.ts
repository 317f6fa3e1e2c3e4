import t from 'tap';
import { AGENT_CONFIG_VERSION, parseAgentConfig, replacedContainers, serializeAgentConfig, withReplaced, type AgentConfig } from '../src/agent-config.js';

const config: AgentConfig = {
  version: AGENT_CONFIG_VERSION,
  agentName: 'web',
  namespace: 'default',
  workloadName: 'web',
  workloadKind: 'Deployment',
  agentImage: 'tp-local/traffic-agent:0.1.0',
  managerHost: 'traffic-manager.tp-system',
  managerPort: 8081,
  agentApiPort: 9900,
  logLevel: 'info',
  containers: [{ name: 'app', mountPoint: '/tel_app_mounts/app', intercepts: [] }],
};

t.test('resources: optional, so that entries written without them stay valid', async (t) => {
  t.strictSame(parseAgentConfig('web', serializeAgentConfig(config)), config, 'an entry without resources');
  const withResources = { ...config, resources: { limits: { memory: '256Mi' }, requests: { cpu: '25m' } } };
  t.strictSame(parseAgentConfig('web', serializeAgentConfig(withResources)), withResources, 'an entry with them');
});

t.test('resources: refused as the API server would refuse the pod, naming the entry', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['64Mi', /resources: not an object of requests and limits/],
    [{ requests: { gpu: '1' } }, /resources: requests: "gpu" is not one of/],
    [{ limits: { memory: '128m' } }, /resources: limits: memory=128m is not a whole number of bytes/],
    [{ requests: { cpu: '2' }, limits: { cpu: '1' } }, /resources: the cpu request 2 is above its limit 1/],
  ];
  for (const [resources, message] of cases) {
    t.throws(() => parseAgentConfig('web', JSON.stringify({ ...config, resources })), { name: 'AgentConfigError', message: new RegExp(`^agent configuration "web": ${message.source}`) }, JSON.stringify(resources));
  }
});

t.test('replaced: optional, true or absent; withReplaced marks exactly the named containers', async (t) => {
  const two: AgentConfig = { ...config, containers: [...config.containers, { name: 'worker', mountPoint: '/tel_app_mounts/worker', intercepts: [] }] };
  t.strictSame(parseAgentConfig('web', serializeAgentConfig(two)), two, 'an entry without the marker');
  const marked = withReplaced(two, ['worker', 'no-such-container']);
  t.strictSame(replacedContainers(marked), ['worker']);
  t.strictSame(parseAgentConfig('web', serializeAgentConfig(marked)), marked, 'an entry with it');
  t.notOk('replaced' in marked.containers[0]!, 'the others have no key at all');
  t.equal(serializeAgentConfig(withReplaced(marked, [])), serializeAgentConfig(two), 'unmarked again: the entry it was, byte for byte');
  t.notOk('replaced' in two.containers[1]!, 'the input is not mutated');
  t.throws(() => parseAgentConfig('web', JSON.stringify({ ...config, containers: [{ ...config.containers[0], replaced: false }] })), {
    name: 'AgentConfigError',
    message: /container app: replaced is true or absent/,
  });
});
