import t, { type Test } from 'tap';
import { request } from 'node:http';
import { once } from 'node:events';
import { connect } from 'node:net';
import { DirectStream, parseHeader } from '@telepresence-ts/core/direct-stream';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import type { AgentSettings } from '../../src/agent/env.js';
import type { AgentConfig } from '@telepresence-ts/core/agent-config';
import { ROUTING_PROBE_REPLY, ROUTING_PROBE_REQUEST } from '@telepresence-ts/core/contracts';
import { closeServer, exchange, FakeManager, intercept, memoryLogger, startReplyServer, until } from './helpers.js';

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

function healthz(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', timeout: 2000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

async function setUp(t: Test, managerUp: boolean): Promise<{ agent: RunningAgent; manager: FakeManager; port: number; app: Awaited<ReturnType<typeof startReplyServer>> }> {
  const app = await startReplyServer('app');
  t.teardown(() => closeServer(app.server));
  const manager = new FakeManager();
  await manager.start();
  if (!managerUp) manager.stop();
  t.teardown(() => manager.stop());
  const cfg = config(app.port, manager.port);
  const settings: AgentSettings = {
    config: cfg,
    namespace: 'default',
    podName: 'echo-7d9c-abcde',
    podIp: '10.244.0.7',
    apiPort: 0,
    managerHost: '127.0.0.1',
    managerPort: manager.port,
    logLevel: 'debug',
    appContainers: [],
  };
  const agent = await startAgent(settings, memoryLogger(), {
    backoff: { initialMs: 20, maxMs: 100 },
    apiHost: '127.0.0.1',
    forwarder: { host: '127.0.0.1', bindPort: () => 0 },
  });
  t.teardown(() => agent.stop());
  const port = agent.forwarder.boundPort(9901) ?? 0;
  return { agent, manager, port, app };
}

t.test('without a manager: healthy, and the app is served', async (t) => {
  const { agent, port } = await setUp(t, false);
  t.equal(await healthz(agent.apiPort), 200, '/healthz answers 200 with the manager down');
  t.equal(await exchange(port, 'hello'), 'app:hello');
});

t.test('an intercept sends new connections through a Tunnel to the manager', async (t) => {
  const { agent, manager, port, app } = await setUp(t, true);
  await until(() => agent.session.sessionId !== undefined, 'arrived');
  t.match(manager.arrivals, [{ name: 'echo', namespace: 'default', podName: 'echo-7d9c-abcde', podIp: '10.244.0.7', kind: 'Deployment' }]);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => agent.session.intercepts.length === 1, 'intercept seen');

  t.equal(await exchange(port, 'hello'), 'client:hello', 'answered by the intercepting side');
  t.equal(manager.tunnels.length, 1);
  const open = manager.tunnels[0]?.open;
  t.equal(open?.sessionId, agent.session.sessionId, 'opened with the agent\'s session');
  t.equal(open?.interceptId, 'client-1:echo');
  t.match(open?.connectionId, /^[0-9a-f-]{36}$/, 'a fresh UUID');
  t.ok(manager.tunnels[0]?.closed, 'the agent half-closed with TunnelClose');
  t.strictSame(app.received, [], 'the app saw nothing');

  // With a personal (header) intercept the port is routed per HTTP request; bytes that are not
  // HTTP still reach the app (http-router.test.ts covers the requests).
  manager.setIntercepts([intercept('client-1:echo', 9901, { spec: { ...intercept('x:y', 1).spec!, headers: [{ name: 'x-user', value: 'me' }] } })]);
  await until(() => agent.session.intercepts[0]?.spec?.headers.length === 1, 'header intercept seen');
  t.equal(await exchange(port, 'again'), 'app:again');
});

t.test('connections from the addresses the manager gave on arrival are routing probes', async (t) => {
  const { agent, manager, port, app } = await setUp(t, true);
  await until(() => agent.session.sessionId !== undefined, 'arrived');
  t.equal(await exchange(port, 'hello'), 'app:hello', 'from a manager without addresses, nothing is a probe');
  manager.podIps = ['10.244.0.2', '127.0.0.1'];
  manager.stop();
  await manager.start();
  await until(() => agent.session.managerPodIps.length === 2, 'arrived again, told the manager’s addresses', 8000);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => agent.session.intercepts.length === 1, 'intercept seen');
  t.equal(await exchange(port, ROUTING_PROBE_REQUEST), ROUTING_PROBE_REPLY, 'a probe from 127.0.0.1 is answered by the agent');
  t.strictSame(manager.tunnels, [], 'and not sent to the intercept');
  t.strictSame(app.received, ['hello'], 'nor to the app');
});

t.test('manager restart: the app is served meanwhile, and routing resumes when it is back', async (t) => {
  const { agent, manager, port } = await setUp(t, true);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => agent.session.intercepts.length === 1, 'intercept seen');
  t.equal(await exchange(port, 'one'), 'client:one');

  manager.stop();
  await until(() => agent.session.intercepts.length === 0, 'snapshot dropped');
  t.equal(await exchange(port, 'two'), 'app:two', 'passthrough while the manager is away');
  t.equal(await healthz(agent.apiPort), 200, 'still healthy');

  await manager.start();
  await until(() => agent.session.intercepts.length === 1, 'intercept seen again', 8000);
  t.equal(agent.session.arrivals, 2, 'arrived again');
  t.equal(await exchange(port, 'three'), 'client:three', 'routed again');
});

/** Parks a direct tunnel at the agent as the client's daemon does (over TCP instead of a port-forward). */
function park(agent: RunningAgent, session: string): DirectStream {
  const stream = new DirectStream(connect({ host: '127.0.0.1', port: agent.direct.port, allowHalfOpen: true }));
  stream.sendHeader({ session });
  return stream;
}

t.test('a direct tunnel parked by the owner takes the connection instead of the manager', async (t) => {
  const { agent, manager, port, app } = await setUp(t, true);
  manager.setIntercepts([intercept('client-1:echo', 9901)]);
  await until(() => agent.session.intercepts.length === 1, 'intercept seen');
  t.equal(manager.arrivals[0]?.tunnelPort, agent.direct.port, 'the agent tells the manager where to park');

  const stranger = park(agent, 'client-2');
  const mine = park(agent, 'client-1');
  await until(() => agent.direct.parkedCount('client-1') === 1 && agent.direct.parkedCount('client-2') === 1, 'both parked');

  // The owner's side of the handed-over connection: read the handoff, then answer like the
  // workstation's process (read to the end, then reply and end).
  const answered = (async () => {
    const handoff = parseHeader(await mine.header);
    let got = '';
    mine.setEncoding('utf8');
    mine.on('data', (chunk: string) => (got += chunk));
    await once(mine, 'end');
    mine.end(`direct:${got}`);
    return handoff;
  })();
  t.equal(await exchange(port, 'hello'), 'direct:hello', 'answered over the parked stream');
  t.match(await answered, { interceptId: 'client-1:echo', source: /^127\.0\.0\.1:\d+$/ });
  t.equal(manager.tunnels.length, 0, 'no Tunnel through the manager');
  t.equal(agent.direct.parkedCount('client-1'), 0, 'a parked stream is used once');
  t.equal(agent.direct.parkedCount('client-2'), 1, "another session's stream is left alone");
  t.strictSame(app.received, []);

  // Nothing parked any more: the manager relays, as before.
  t.equal(await exchange(port, 'again'), 'client:again');
  t.equal(manager.tunnels.length, 1);
  stranger.destroy();
});
