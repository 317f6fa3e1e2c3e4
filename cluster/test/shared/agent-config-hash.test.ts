import t from 'tap';
import { AGENT_CONFIG_HASH_ANNOTATION, agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { AGENT_CONFIG_VERSION, serializeAgentConfig, withReplaced, type AgentConfig } from '@telepresence-ts/core/agent-config';
import { createHash } from 'node:crypto';

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
  containers: [
    {
      name: 'app',
      mountPoint: '/tel_app_mounts/app',
      intercepts: [
        {
          serviceName: 'web',
          serviceUid: 'uid-1',
          servicePortName: 'http',
          servicePort: 80,
          protocol: 'TCP',
          targetPortNumeric: false,
          containerPortName: 'http',
          containerPort: 8080,
          agentPort: 9901,
        },
      ],
    },
  ],
};

t.test('16 lower-case hex characters: the head of sha256 of the serialized entry', (t) => {
  const h = agentConfigHash(config);
  t.match(h, /^[0-9a-f]{16}$/);
  t.equal(h, createHash('sha256').update(serializeAgentConfig(config)).digest('hex').slice(0, 16));
  t.end();
});

t.test('equal configs hash alike; any change changes the hash', (t) => {
  t.equal(agentConfigHash(structuredClone(config)), agentConfigHash(config), 'a deep copy');
  const changed = structuredClone(config);
  changed.containers[0]!.intercepts[0]!.agentPort = 9902;
  t.not(agentConfigHash(changed), agentConfigHash(config), 'one agent port');
  t.not(agentConfigHash({ ...config, agentImage: 'tp-local/traffic-agent:0.2.0' }), agentConfigHash(config), 'the image');
  t.end();
});

t.test("the agent's resources: absent hashes as an entry written before the field existed; set, they are part of the hash", (t) => {
  t.equal(agentConfigHash({ ...config, resources: undefined }), agentConfigHash(config), 'an unset field is not serialized');
  t.notMatch(serializeAgentConfig(config), /resources/, 'an entry without resources has no such key');
  const limited: AgentConfig = { ...config, resources: { limits: { memory: '256Mi' }, requests: { cpu: '25m' } } };
  t.not(agentConfigHash(limited), agentConfigHash(config), 'resources set');
  t.not(agentConfigHash({ ...limited, resources: { limits: { memory: '512Mi' }, requests: { cpu: '25m' } } }), agentConfigHash(limited), 'another limit');
  t.not(agentConfigHash({ ...config, logLevel: 'debug' }), agentConfigHash(config), 'the log level');
  t.end();
});

t.test('a replaced container: unmarked hashes as an entry written before the marker existed; marked, it is a new hash', (t) => {
  t.notMatch(serializeAgentConfig(config), /replaced/, 'an entry without a replace has no such key');
  const marked = withReplaced(config, ['app']);
  t.not(agentConfigHash(marked), agentConfigHash(config), 'marked: new pods');
  t.equal(agentConfigHash(withReplaced(marked, [])), agentConfigHash(config), 'unmarked: the hash of before');
  t.end();
});

t.test('the annotation key is ours', (t) => {
  t.equal(AGENT_CONFIG_HASH_ANNOTATION, 'telepresence.io/agent-config-hash');
  t.end();
});
