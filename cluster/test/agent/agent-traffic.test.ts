import t, { type Test } from 'tap';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAgent } from '../../src/agent/agent.js';
import type { AgentSettings } from '../../src/agent/env.js';
import type { AgentConfig } from '@telepresence-ts/core/agent-config';
import { exchange, FakeManager, intercept, memoryLogger, until } from './helpers.js';

function config(appPort: number, managerPort: number): AgentConfig {
  return {
    version: 1,
    agentName: 'echo',
    namespace: 'default',
    workloadName: 'echo',
    workloadKind: 'Deployment',
    agentImage: 'tp-local/traffic-agent:0.1.0',
    managerHost: '127.0.0.1',
    managerPort,
    agentApiPort: 9900,
    logLevel: 'debug',
    containers: [
      {
        name: 'app',
        mountPoint: '/tel_app_mounts/app',
        intercepts: [
          { serviceName: 'echo', serviceUid: 'uid-1', servicePortName: 'http', servicePort: 80, protocol: 'TCP', targetPortNumeric: false, containerPortName: 'http', containerPort: appPort, agentPort: 9901 },
        ],
      },
    ],
  };
}

/** An HTTP app answering `app <method> <path>`. */
async function httpApp(t: Test): Promise<number> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`app ${req.method ?? ''} ${req.url ?? ''}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(`${res.statusCode ?? 0} ${body}`));
    });
    req.on('error', reject);
    req.end();
  });
}

async function setUp(t: Test) {
  const appPort = await httpApp(t);
  const manager = new FakeManager();
  await manager.start();
  t.teardown(() => manager.stop());
  const settings: AgentSettings = {
    config: config(appPort, manager.port),
    namespace: 'default',
    podName: 'echo-7d9c-abcde',
    podIp: '10.244.0.7',
    apiPort: 0,
    managerHost: '127.0.0.1',
    managerPort: manager.port,
    logLevel: 'debug',
    appContainers: [],
  };
  const agent = await startAgent(settings, memoryLogger(), { backoff: { initialMs: 20, maxMs: 100 }, apiHost: '127.0.0.1', forwarder: { host: '127.0.0.1', bindPort: () => 0 } });
  t.teardown(() => agent.stop());
  await until(() => agent.session.sessionId !== undefined, 'arrived');
  return { agent, manager, port: agent.forwarder.boundPort(9901) ?? 0 };
}

t.test('a global intercept’s connections are reported when they end, watched or not', async (t) => {
  const { agent, manager, port } = await setUp(t);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => agent.session.intercepts.length === 1, 'intercept seen');
  t.equal(await exchange(port, 'hello'), 'client:hello');
  await until(() => manager.traffic.length === 1, 'the connection reported');
  t.match(manager.traffic[0], { sessionId: agent.session.sessionId, interceptId: 'client-1:echo', kind: 'tcp', podName: 'echo-7d9c-abcde', answeredBy: 'workstation', bytesIn: 5, bytesOut: 12 });
});

t.test('no engagement: nothing is reported', async (t) => {
  const { manager, port } = await setUp(t);
  t.equal(await get(port, '/x'), '200 app GET /x');
  manager.setIntercepts([]);
  t.equal(await get(port, '/y'), '200 app GET /y');
  t.strictSame(manager.traffic, []);
});

t.test('a watched personal intercept: each request, in order, with who answered it', async (t) => {
  const { agent, manager, port } = await setUp(t);
  const mine = intercept('client-1:echo', 9901, { spec: { ...intercept('client-1:echo', 9901).spec!, headers: [{ name: 'x-user', value: 'me' }] }, watchers: 1 });
  manager.setIntercepts([mine]);
  await until(() => agent.session.intercepts[0]?.watchers === 1, 'watched intercept seen');
  t.equal(await get(port, '/one', { authorization: 'Bearer x' }), '200 app GET /one');
  t.equal(await get(port, '/two'), '200 app GET /two');
  await until(() => manager.traffic.filter((e) => e.kind === 'http').length === 2, 'two requests reported');
  t.match(
    manager.traffic.filter((e) => e.kind === 'http'),
    [
      { method: 'GET', path: '/one', status: 200, answeredBy: 'app', requestHeaders: [{ name: 'authorization', value: 'Bearer x' }] },
      { method: 'GET', path: '/two', status: 200, answeredBy: 'app' },
    ],
  );
  await until(() => manager.traffic.filter((e) => e.kind === 'tcp').length === 2, 'and both connections');
});
