import { VERSION } from '@telepresence-ts/core/version';
import t from 'tap';
import { parseManagerEnv } from '../../src/manager/env.js';

t.test('defaults', (t) => {
  t.strictSame(parseManagerEnv({}), {
    namespace: 'tp-system',
    port: 8081,
    logLevel: 'info',
    agentImage: `tp-local/traffic-agent:${VERSION}`,
    agentLogLevel: 'info',
    agentResources: undefined,
    managerHost: 'traffic-manager.tp-system',
    prepareTimeoutMs: 120_000,
    podIps: [],
    podCidrs: [],
    serviceCidrs: [],
  });
  t.end();
});

t.test('every variable read', (t) => {
  t.strictSame(
    parseManagerEnv({
      TP_MANAGER_NAMESPACE: 'tele',
      TP_MANAGER_PORT: '9000',
      TP_LOG_LEVEL: 'debug',
      TP_AGENT_IMAGE: 'registry.example/agent:1.2',
      TP_AGENT_LOG_LEVEL: 'warn',
      TP_AGENT_RESOURCES: '{"requests":{"memory":"64Mi","cpu":"50m"},"limits":{"memory":"256Mi"}}',
      TP_PREPARE_TIMEOUT_SECONDS: '30',
      TP_MANAGER_POD_IPS: '10.244.0.2,fd00::2',
      TP_POD_CIDRS: '10.244.0.0/16, fd00:10:244::/56',
      TP_SERVICE_CIDRS: '10.96.7.1/12',
    }),
    {
      namespace: 'tele',
      port: 9000,
      logLevel: 'debug',
      agentImage: 'registry.example/agent:1.2',
      // The agents' own settings: the manager logs at debug, its agents at warn.
      agentLogLevel: 'warn',
      agentResources: { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } },
      managerHost: 'traffic-manager.tele',
      prepareTimeoutMs: 30_000,
      podIps: ['10.244.0.2', 'fd00::2'],
      podCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'],
      // Host bits are cleared: the override is a subnet, however it was written.
      serviceCidrs: ['10.96.0.0/12'],
    },
  );
  t.end();
});

t.test('bad values fail with one config error naming each', (t) => {
  t.throws(() => parseManagerEnv({ TP_MANAGER_NAMESPACE: 'Tele', TP_MANAGER_PORT: 'http' }), {
    category: 'config',
    message: /^invalid environment: TP_MANAGER_NAMESPACE="Tele" .*; TP_MANAGER_PORT="http" is not a port number/,
    hint: 'fix the environment of the traffic-manager container',
  });
  t.throws(() => parseManagerEnv({ TP_MANAGER_PORT: 'http', TP_PREPARE_TIMEOUT_SECONDS: '2m' }), {
    category: 'config',
    message: /^invalid environment: TP_MANAGER_PORT="http" is not a port number.*; TP_PREPARE_TIMEOUT_SECONDS="2m" is not a number of seconds/,
  });
  for (const bad of ['0', '-5', '3601', '1.5']) {
    t.throws(() => parseManagerEnv({ TP_PREPARE_TIMEOUT_SECONDS: bad }), { code: 'bad-environment', message: /TP_PREPARE_TIMEOUT_SECONDS/ }, bad);
  }
  t.throws(() => parseManagerEnv({ TP_AGENT_IMAGE: 'a b' }), { message: /TP_AGENT_IMAGE="a b" is not an image reference/ });
  t.throws(() => parseManagerEnv({ TP_AGENT_LOG_LEVEL: 'chatty', TP_AGENT_RESOURCES: '{"limits":{"memory":"1x"}}' }), {
    code: 'bad-environment',
    message: /TP_AGENT_LOG_LEVEL="chatty" is not one of debug, info, warn, error; TP_AGENT_RESOURCES=.* "1x" is not a Kubernetes quantity/,
  });
  t.throws(() => parseManagerEnv({ TP_POD_CIDRS: '10.244.0.0/16,10.300.0.0/16', TP_SERVICE_CIDRS: 'cluster' }), {
    code: 'bad-environment',
    message: /TP_POD_CIDRS="10.244.0.0\/16,10.300.0.0\/16" is not a comma-separated list of CIDRs \(not one: "10.300.0.0\/16"\); TP_SERVICE_CIDRS="cluster" is not/,
  });
  t.throws(() => parseManagerEnv({ TP_MANAGER_POD_IPS: '10.244.0.2,pod' }), { code: 'bad-environment', message: /TP_MANAGER_POD_IPS="10.244.0.2,pod" is not a comma-separated list of IP addresses/ });
  t.end();
});
