import t from 'tap';
import { loadAgentSettings, parseAgentEnv } from '../../src/agent/env.js';
import { serializeAgentConfig, type AgentConfig } from '@telepresence-ts/core/agent-config';

const CONFIG: AgentConfig = {
  version: 1,
  agentName: 'echo',
  namespace: 'default',
  workloadName: 'echo',
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
        { serviceName: 'echo', serviceUid: 'u', servicePortName: 'http', servicePort: 80, protocol: 'TCP', targetPortNumeric: false, containerPortName: 'http', containerPort: 8080, agentPort: 9901 },
      ],
    },
  ],
};

const PATH = '/etc/traffic-agent/config.json';
const files = (text: string) => (path: string): string => {
  if (path !== PATH) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
  return text;
};
const host = (): string => 'echo-7d9c-abcde';

t.test('the environment: only the config path is required', (t) => {
  t.strictSame(parseAgentEnv({ TP_AGENT_CONFIG: PATH }), {
    configPath: PATH,
    agentName: undefined,
    namespace: undefined,
    podName: undefined,
    podIp: undefined,
    apiPort: undefined,
    managerHost: undefined,
    managerPort: undefined,
    logLevel: undefined,
  });
  t.throws(() => parseAgentEnv({}), { category: 'config', message: 'invalid environment: TP_AGENT_CONFIG is required but not set' });
  t.end();
});

t.test('bad values are all named', (t) => {
  t.throws(() => parseAgentEnv({ TP_AGENT_CONFIG: PATH, TP_POD_IP: 'pod', TP_MANAGER_PORT: '0', TP_LOG_LEVEL: 'loud' }), {
    message: /TP_POD_IP="pod" is not an IP address; TP_MANAGER_PORT="0" is not a port number.*; TP_LOG_LEVEL="loud" is not one of/,
  });
  t.end();
});

t.test('settings from the file alone', (t) => {
  t.strictSame(loadAgentSettings({ TP_AGENT_CONFIG: PATH }, files(serializeAgentConfig(CONFIG)), host), {
    config: CONFIG,
    namespace: 'default',
    podName: 'echo-7d9c-abcde',
    podIp: '',
    apiPort: 9900,
    managerHost: 'traffic-manager.tp-system',
    managerPort: 8081,
    logLevel: 'info',
    appContainers: [{ name: 'app', mountRoot: '/tel_app_mounts/app', env: {}, mounts: [] }],
  });
  t.end();
});

t.test('the app container\'s environment: its prefixed variables and the service links, nothing else', (t) => {
  const env = {
    TP_AGENT_CONFIG: PATH,
    PATH: '/usr/bin',
    HOSTNAME: 'echo-1',
    KUBERNETES_SERVICE_HOST: '10.96.0.1',
    KUBERNETES_PORT_443_TCP_ADDR: '10.96.0.1',
    TP_APP0_GREETING: 'hello',
    TP_APP0_DB_PASSWORD: 's3cret',
    TP_APP0_KUBERNETES_SERVICE_HOST: 'overridden',
    TP_APP0_TELEPRESENCE_MOUNTS: '/etc/config:/data',
    TP_APP1_OTHER: 'another container',
  };
  t.strictSame(loadAgentSettings(env, files(serializeAgentConfig(CONFIG)), host).appContainers, [
    {
      name: 'app',
      mountRoot: '/tel_app_mounts/app',
      env: { KUBERNETES_SERVICE_HOST: 'overridden', KUBERNETES_PORT_443_TCP_ADDR: '10.96.0.1', GREETING: 'hello', DB_PASSWORD: 's3cret' },
      mounts: ['/etc/config', '/data'],
    },
  ]);
  t.end();
});

t.test('the environment the injector sets wins over the file', (t) => {
  const env = {
    TP_AGENT_CONFIG: PATH,
    TP_AGENT_NAME: 'echo',
    TP_AGENT_NAMESPACE: 'team-a',
    TP_POD_NAME: 'echo-1',
    TP_POD_IP: '10.244.0.7',
    TP_AGENT_PORT: '9800',
    TP_MANAGER_HOST: 'traffic-manager.other',
    TP_MANAGER_PORT: '8082',
    TP_LOG_LEVEL: 'debug',
  };
  t.match(loadAgentSettings(env, files(serializeAgentConfig(CONFIG)), host), {
    namespace: 'team-a',
    podName: 'echo-1',
    podIp: '10.244.0.7',
    apiPort: 9800,
    managerHost: 'traffic-manager.other',
    managerPort: 8082,
    logLevel: 'debug',
  });
  t.end();
});

t.test('a bad or missing file is a config error that says what to do', (t) => {
  const cases: ReadonlyArray<{ name: string; env?: Record<string, string>; text: string; path?: string; code: string; message: RegExp }> = [
    { name: 'missing', text: '', path: '/nope', code: 'agent-config-unreadable', message: /cannot read the agent configuration \/nope: ENOENT/ },
    { name: 'not JSON', text: '{', code: 'bad-agent-config', message: /agent configuration "": not JSON/ },
    { name: 'old version', text: serializeAgentConfig({ ...CONFIG, version: 2 as 1 }), code: 'bad-agent-config', message: /version 2 is not 1/ },
    { name: 'another workload\'s entry', env: { TP_AGENT_NAME: 'other' }, text: serializeAgentConfig(CONFIG), code: 'bad-agent-config', message: /"other": agentName is "echo", not its key/ },
  ];
  for (const c of cases) {
    t.throws(() => loadAgentSettings({ TP_AGENT_CONFIG: c.path ?? PATH, ...c.env }, files(c.text), host), { category: 'config', code: c.code, message: c.message }, c.name);
  }
  t.end();
});

t.test('an unknown log level in the file falls back to info', (t) => {
  const text = serializeAgentConfig({ ...CONFIG, logLevel: 'chatty' as 'info' });
  t.equal(loadAgentSettings({ TP_AGENT_CONFIG: PATH }, files(text), host).logLevel, 'info');
  t.end();
});
