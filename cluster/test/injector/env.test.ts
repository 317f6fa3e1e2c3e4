import { VERSION } from '@telepresence-ts/core/version';
import t from 'tap';
import { parseInjectorEnv } from '../../src/injector/env.js';
import { parseManagerEnv } from '../../src/manager/env.js';

t.test('defaults', (t) => {
  t.strictSame(parseInjectorEnv({}), {
    namespace: 'tp-system',
    port: 8443,
    tlsCertPath: '/etc/agent-injector/tls/tls.crt',
    tlsKeyPath: '/etc/agent-injector/tls/tls.key',
    logLevel: 'info',
    build: { agentImage: `tp-local/traffic-agent:${VERSION}`, managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' },
  });
  t.end();
});

t.test('every variable read', (t) => {
  t.strictSame(
    parseInjectorEnv({
      TP_MANAGER_NAMESPACE: 'tele',
      TP_INJECTOR_PORT: '443',
      TP_INJECTOR_TLS_CERT: '/tls/c.pem',
      TP_INJECTOR_TLS_KEY: '/tls/k.pem',
      TP_LOG_LEVEL: 'warn',
      TP_AGENT_IMAGE: 'registry.example/agent:1.2',
      TP_MANAGER_PORT: '9000',
      TP_AGENT_LOG_LEVEL: 'debug',
      TP_AGENT_RESOURCES: '{"limits":{"memory":"256Mi"}}',
    }),
    {
      namespace: 'tele',
      port: 443,
      tlsCertPath: '/tls/c.pem',
      tlsKeyPath: '/tls/k.pem',
      logLevel: 'warn',
      // The injector logs at warn; the agents it builds configurations for, at debug.
      build: { agentImage: 'registry.example/agent:1.2', managerHost: 'traffic-manager.tele', managerPort: 9000, logLevel: 'debug', resources: { limits: { memory: '256Mi' } } },
    },
  );
  t.end();
});

t.test('the manager port is where agents dial, not the webhook port', (t) => {
  const config = parseInjectorEnv({ TP_MANAGER_PORT: '1234' });
  t.equal(config.port, 8443);
  t.equal(config.build.managerPort, 1234);
  t.end();
});

t.test("the build settings are the manager's from the same environment", (t) => {
  const envs = [
    {},
    { TP_MANAGER_NAMESPACE: 'tele', TP_MANAGER_PORT: '9000', TP_LOG_LEVEL: 'debug', TP_AGENT_IMAGE: 'registry.example/agent:1.2' },
    { TP_LOG_LEVEL: 'error', TP_AGENT_LOG_LEVEL: 'debug', TP_AGENT_RESOURCES: '{"requests":{"memory":"64Mi","cpu":"50m"}}' },
    { TP_AGENT_RESOURCES: '{}' },
  ];
  for (const env of envs) {
    const m = parseManagerEnv(env);
    const build = { agentImage: m.agentImage, managerHost: m.managerHost, managerPort: m.port, logLevel: m.agentLogLevel, ...(m.agentResources === undefined ? {} : { resources: m.agentResources }) };
    t.strictSame(parseInjectorEnv(env).build, build, JSON.stringify(env));
  }
  t.equal(parseInjectorEnv({ TP_LOG_LEVEL: 'debug' }).build.logLevel, 'info', "the agents' log level is not the program's own");
  t.end();
});

t.test('bad values fail with a config error', (t) => {
  t.throws(() => parseInjectorEnv({ TP_INJECTOR_PORT: '99999', TP_LOG_LEVEL: 'loud', TP_AGENT_IMAGE: 'a b', TP_AGENT_LOG_LEVEL: 'all', TP_AGENT_RESOURCES: '{"limits":{"gpu":"1"}}' }), {
    category: 'config',
    code: 'bad-environment',
    message: /TP_INJECTOR_PORT="99999" is not a port number.*TP_LOG_LEVEL="loud".*TP_AGENT_RESOURCES=.*"gpu" is not one of.*TP_AGENT_IMAGE="a b" is not an image reference.*TP_AGENT_LOG_LEVEL="all"/,
    hint: 'fix the environment of the agent-injector container',
  });
  t.end();
});
