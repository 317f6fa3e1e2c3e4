import t from 'tap';
import { parseAgentEnv } from '../../src/agent/env.js';

const minimal = { TP_AGENT_NAME: 'echo', TP_AGENT_NAMESPACE: 'default' };

t.test('defaults around the two required variables', (t) => {
  t.strictSame(parseAgentEnv(minimal), {
    agentName: 'echo',
    namespace: 'default',
    podName: undefined,
    podIp: undefined,
    port: 9900,
    managerHost: 'traffic-manager.tp-system',
    managerPort: 8081,
    logLevel: 'info',
  });
  t.end();
});

t.test('every variable read', (t) => {
  t.strictSame(
    parseAgentEnv({
      ...minimal,
      TP_POD_NAME: 'echo-7d9c-abcde',
      TP_POD_IP: '10.244.0.7',
      TP_AGENT_PORT: '9901',
      TP_MANAGER_HOST: 'traffic-manager.other',
      TP_MANAGER_PORT: '8082',
      TP_LOG_LEVEL: 'error',
    }),
    {
      agentName: 'echo',
      namespace: 'default',
      podName: 'echo-7d9c-abcde',
      podIp: '10.244.0.7',
      port: 9901,
      managerHost: 'traffic-manager.other',
      managerPort: 8082,
      logLevel: 'error',
    },
  );
  t.end();
});

t.test('missing required variables are named', (t) => {
  t.throws(() => parseAgentEnv({}), {
    category: 'config',
    message: 'invalid environment: TP_AGENT_NAME is required but not set; TP_AGENT_NAMESPACE is required but not set',
    hint: 'fix the environment of the traffic-agent container',
  });
  t.end();
});

t.test('bad pod IP and manager host are rejected', (t) => {
  t.throws(() => parseAgentEnv({ ...minimal, TP_POD_IP: 'pod', TP_MANAGER_HOST: 'http://x' }), {
    message: /TP_POD_IP="pod" is not an IP address; TP_MANAGER_HOST="http:\/\/x" is not a host name/,
  });
  t.end();
});
