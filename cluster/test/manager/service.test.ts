import { Server, credentials, status, type ClientDuplexStream, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { ManagerClient, type CreateInterceptRequest, type DialRequest, type InterceptInfo, type LookupDNSRequest, type LookupDNSResponse, type PrepareInterceptResponse, type SessionInfo, type TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { buildAgentConfig, type BuildOptions } from '../../src/manager/agent-config-builder.js';
import { addToServer, type ServiceDeps } from '../../src/manager/service.js';
import { ROUTING_PROBES_PER_POD } from '../../src/manager/prepare.js';
import { State } from '../../src/manager/state.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { fromServiceError } from '../../src/shared/grpc-errors.js';
import { listenGrpcAndHealth } from '../../src/shared/grpc-http-mux.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { dnsAnswer, dnsQuery, startResponder } from './dns-fixtures.js';
import { FakeKube, pod } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const build: BuildOptions = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' };
const web = workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] }]);
const webRef = { kind: 'Deployment' as const, name: 'web', namespace: 'default' };
const spec = (over: Record<string, unknown> = {}) => ({
  name: '',
  namespace: 'default',
  workloadName: 'web',
  workloadKind: '',
  serviceName: '',
  servicePort: '',
  containerName: '',
  localPort: 3000,
  headers: [],
  httpPathPrefix: '',
  httpMethods: [],
  mode: '',
  ports: [],
  ...over,
});

const clusterInfo = { podSubnets: ['10.244.0.0/16'], serviceSubnets: ['10.96.0.0/16'], clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' };
const staticClusterInfo = { get: () => Promise.resolve(clusterInfo), dns: () => Promise.resolve({ clusterDomain: 'cluster.local', dnsServer: '10.96.0.10' }) };

async function startManager(
  t: Test,
  services = [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })],
  probing: Partial<Pick<ServiceDeps, 'podIps' | 'probeRouting' | 'clusterInfo' | 'dnsPort'>> = {},
) {
  const kube = new FakeKube();
  kube.workloads.push(web);
  kube.services.push(...services);
  const clock = new FakeClock();
  const state = new State(clock);
  const server = new Server();
  const handle = addToServer(server, { state, kube, clock, build, prepareTimeoutMs: 120_000, log: createLogger('traffic-manager', 'error', () => undefined), clusterInfo: staticClusterInfo, ...probing });
  const listener = await listenGrpcAndHealth(server, 0, '127.0.0.1');
  const client = new ManagerClient(`127.0.0.1:${listener.port}`, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    state.close();
    await listener.close();
    server.forceShutdown();
  });
  return { kube, clock, state, client, handle, server };
}

/** A unary call as a promise. */
function call<Req, Res>(fn: (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Everything a server stream sends, and how it ended. */
function collect<T>(stream: ClientReadableStream<T>): Promise<{ messages: T[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', (error: ServiceError) => resolve({ messages, error }));
    stream.on('end', () => resolve({ messages }));
  });
}

const alice = { name: 'alice@laptop', installId: 'a', product: 'cli', version: '0.1.0', resumeSessionId: '' };
const bob = { name: 'bob@desk', installId: 'b', product: 'cli', version: '0.1.0', resumeSessionId: '' };
const agentInfo = (podName = 'web-1') => ({ name: 'web', namespace: 'default', podName, podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });

t.test('version, arrive, remain, depart and expiry over gRPC', async (t) => {
  const { client, clock } = await startManager(t);
  t.match(await call(client.version.bind(client), {}), { name: 'traffic-manager' });
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  t.match(s, { heartbeatSeconds: 3, expirySeconds: 10 });
  t.strictSame(await call(client.remain.bind(client), s), {});
  clock.advance(10_000);
  const err = await call(client.remain.bind(client), s).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  t.equal(err?.code, status.NOT_FOUND, 'an expired session is NOT_FOUND');
  t.equal(err?.metadata.get('tp-error-code')[0], 'session-expired');
  const a = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  await call(client.depart.bind(client), a);
  await t.rejects(call(client.remain.bind(client), a), { code: status.NOT_FOUND }, 'departed');
});

t.test('GetClusterInfo answers a client session only', async (t) => {
  const { client } = await startManager(t);
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  // No dial port in this manager: the field is unset.
  t.strictSame(await call(client.getClusterInfo.bind(client), s), { ...clusterInfo, dialPort: undefined });
  const a = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  await t.rejects(call(client.getClusterInfo.bind(client), a), { code: status.INVALID_ARGUMENT }, "an agent's session");
  await t.rejects(call(client.getClusterInfo.bind(client), { ...s, sessionId: 'nope' }), { code: status.NOT_FOUND }, 'an unknown session');
});

t.test('LookupDNS asks the DNS server of the manager’s resolv.conf', async (t) => {
  const r = await startResponder(t, (q) => [dnsAnswer(q, '10.96.0.1')]);
  const { client } = await startManager(t, undefined, {
    clusterInfo: { ...staticClusterInfo, dns: () => Promise.resolve({ clusterDomain: 'cluster.local', dnsServer: '127.0.0.1' }) },
    dnsPort: r.port,
  });
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const query = dnsQuery(0x1234, 'kubernetes.default.svc.cluster.local');
  const res = await call<LookupDNSRequest, LookupDNSResponse>(client.lookupDns.bind(client), { session: s, query });
  t.strictSame(Buffer.from(res.response), dnsAnswer(query, '10.96.0.1'), 'the answer, unchanged');
  t.strictSame(r.udp, [query], 'the question, unchanged');

  const short = await call(client.lookupDns.bind(client), { session: s, query: Buffer.alloc(5) }).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  t.equal(short?.code, status.INVALID_ARGUMENT);
  t.equal(short?.metadata.get('tp-error-code')[0], 'bad-dns-query');
  await t.rejects(call(client.lookupDns.bind(client), { session: { ...s, sessionId: 'nope' }, query }), { code: status.NOT_FOUND }, 'an unknown session');
  t.equal(r.udp.length, 1, 'neither was asked');
});

t.test('LookupDNS without an answer fails with dns-timeout', async (t) => {
  const r = await startResponder(t, () => []);
  const { client } = await startManager(t, undefined, {
    clusterInfo: { ...staticClusterInfo, dns: () => Promise.resolve({ clusterDomain: 'cluster.local', dnsServer: '127.0.0.1' }) },
    dnsPort: r.port,
  });
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const err = await call(client.lookupDns.bind(client), { session: s, query: dnsQuery(9, 'slow.example') }).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  t.equal(err?.code, status.UNAVAILABLE);
  t.equal(err?.metadata.get('tp-error-code')[0], 'dns-timeout');
});

t.test('agents are told the manager pod’s addresses on arrival, clients are not', async (t) => {
  const { client } = await startManager(t, undefined, { podIps: ['10.244.0.2', 'fd00::2'] });
  const agent = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  t.strictSame(agent.managerPodIps, ['10.244.0.2', 'fd00::2']);
  const user = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  t.strictSame(user.managerPodIps, []);
});

t.test('WatchAgents streams a snapshot on every change and ends with its session', async (t) => {
  const { client, clock } = await startManager(t);
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const stream = client.watchAgents(s);
  const got: string[][] = [];
  let ended = false;
  stream.on('end', () => (ended = true));
  stream.on('error', () => undefined);
  stream.on('data', (snap: { agents: Array<{ podName: string }> }) => got.push(snap.agents.map((a) => a.podName)));
  await eventually(() => got.length === 1);
  await call(client.arriveAsAgent.bind(client), agentInfo('web-1'));
  await eventually(() => got.length === 2);
  clock.advance(9_000);
  await call(client.remain.bind(client), s);
  clock.advance(1000);
  await eventually(() => got.length === 3);
  t.strictSame(got, [[], ['web-1'], []], 'none, the agent, none after the agent expired');
  t.notOk(ended);
  clock.advance(9_000);
  await eventually(() => ended);
  t.ok(ended, 'the stream ends when the watching session expires');
});

/** Polls (bounded) until `cond` holds: the style guide's alternative to sleeping. */
async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Prepares web over gRPC as alice, rolling it out by hand as the manager's watcher (not running
 * here) would, and has the new pod's agent arrive; every message of the stream.
 */
async function prepareWithRollout({ client, kube, state }: Awaited<ReturnType<typeof startManager>>): Promise<PrepareInterceptResponse[]> {
  const hash = agentConfigHash(buildAgentConfig(web, kube.services, build));
  kube.onRestart = () => kube.setPods(webRef, [pod('web-new', { agent: true, hash })]);
  const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const stream = client.prepareIntercept({ session: s, spec: spec() });
  const messages: PrepareInterceptResponse[] = [];
  stream.on('data', (m: PrepareInterceptResponse) => messages.push(m));
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  await eventually(() => messages.length >= 2);
  await kube.restartWorkload(webRef, 'now');
  state.arriveAsAgent(agentInfo('web-new'));
  await ended;
  return messages;
}

t.test('PrepareIntercept', async (t) => {
  t.test('streams progress, then prepared', async (t) => {
    const messages = await prepareWithRollout(await startManager(t));
    t.match(messages[0], { progress: 'wrote the traffic-agent configuration of deployment/web; replacing its pods' });
    t.match(messages.at(-1), { prepared: { podName: 'web-new', rolledOut: true, spec: { name: 'web-default', servicePort: 'http' }, target: { agentPort: 9901 } } });
    t.ok(messages.slice(1, -1).every((m) => m.progress?.startsWith('waiting for deployment/web') === true), 'waiting lines in between');
  });

  t.test('probes the Service after a rollout only when agents were given the manager’s addresses', async (t) => {
    const withIp = service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' });
    const services = [{ ...withIp, spec: { ...withIp.spec, clusterIP: '10.96.0.10' } }];
    for (const podIps of [[], ['10.244.0.2']]) {
      const probes: string[] = [];
      const probeRouting = (address: string, port: number): Promise<boolean> => {
        probes.push(`${address}:${port}`);
        return Promise.resolve(true);
      };
      const messages = await prepareWithRollout(await startManager(t, services, { podIps, probeRouting }));
      t.match(messages.at(-1), { prepared: { podName: 'web-new', rolledOut: true } });
      t.equal(probes.length, podIps.length === 0 ? 0 : ROUTING_PROBES_PER_POD, `${podIps.length} manager address(es): ${probes.length} probes`);
    }
  });

  t.test('an ambiguous port fails with the code, category and hint as metadata', async (t) => {
    const { client } = await startManager(t, [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' })]);
    const s = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
    const { messages, error } = await collect(client.prepareIntercept({ session: s, spec: spec() }));
    t.strictSame(messages, []);
    t.equal(error?.code, status.INVALID_ARGUMENT);
    t.equal(error?.details, 'deployment/web has 2 interceptable ports; choose one with --port <local>:<port>: http (service web, 80 -> container app:8080), grpc (service web, 90 -> container app:9090)');
    t.equal(error?.metadata.get('tp-error-category')[0], 'user');
    t.equal(error?.metadata.get('tp-error-code')[0], 'ambiguous-port');
    t.equal(error?.metadata.get('tp-error-hint')[0], 'e.g. --port 8080:http');
    t.match(fromServiceError(error!), { category: 'user', code: 'ambiguous-port', hint: 'e.g. --port 8080:http' }, 'a client gets the TpError back');
  });

  t.test('an unknown session is refused', async (t) => {
    const { client } = await startManager(t);
    const { error } = await collect(client.prepareIntercept({ session: { sessionId: 'nope', heartbeatSeconds: 0, expirySeconds: 0, managerPodIps: [] }, spec: spec() }));
    t.equal(error?.code, status.NOT_FOUND);
  });
});

t.test('CreateIntercept, conflicts, RemoveIntercept and UninstallAgents', async (t) => {
  const { client, kube } = await startManager(t);
  const a = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const b = await call<typeof bob, SessionInfo>(client.arriveAsClient.bind(client), bob);
  await t.rejects(call(client.createIntercept.bind(client), { session: a, spec: spec() }), { code: status.INVALID_ARGUMENT, details: /has no traffic-agent configuration/ }, 'not prepared');
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, kube.services, build)) });
  const info = await call(client.createIntercept.bind(client), { session: a, spec: spec() });
  t.match(info, { id: `${a.sessionId}:web-default`, clientName: 'alice@laptop', target: { containerPort: 8080 } });
  const err = await call(client.createIntercept.bind(client), { session: b, spec: spec() }).then(
    () => undefined,
    (e: ServiceError) => e,
  );
  t.equal(err?.code, status.INVALID_ARGUMENT);
  t.equal(err?.metadata.get('tp-error-code')[0], 'intercept-conflict');
  t.match(err?.details, /already intercepted by alice@laptop/);
  await call(client.createIntercept.bind(client), { session: b, spec: spec({ headers: [{ name: 'x-user', value: 'bob' }] }) }).then(
    () => t.fail('a personal intercept still conflicts with a global one'),
    (e: ServiceError) => t.equal(e.metadata.get('tp-error-code')[0], 'intercept-conflict'),
  );
  await call(client.removeIntercept.bind(client), { session: a, name: 'web-default' });
  t.match(await call(client.createIntercept.bind(client), { session: b, spec: spec() }), { clientName: 'bob@desk' }, 'free again after remove');
  t.strictSame(await call(client.uninstallAgents.bind(client), { session: a, namespace: 'default', workloadNames: ['web'], all: false }), { removed: ['default/web'] });
  t.strictSame(kube.maps.get('default'), {});
  await t.rejects(call(client.uninstallAgents.bind(client), { session: a, namespace: 'default', workloadNames: ['web'], all: false }), { code: status.INVALID_ARGUMENT, details: /no traffic-agent is configured for web/ });
});

t.test('Tunnel relays 1 MiB each way with half-close', async (t) => {
  const { client, kube } = await startManager(t);
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, kube.services, build)) });
  const a = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const agent = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  const ic = await call<CreateInterceptRequest, InterceptInfo>(client.createIntercept.bind(client), { session: a, spec: spec() });
  const dials = client.watchDials(a);
  const dialed = new Promise<DialRequest>((resolve) => dials.once('data', resolve));
  dials.on('error', () => undefined);

  const toClient = randomBytes(1024 * 1024);
  const toAgent = randomBytes(1024 * 1024);
  /** Sends `payload` in 16 KiB messages honouring backpressure, then a close; collects what arrives until the peer's close. */
  function endpoint(stream: ClientDuplexStream<TunnelMessage, TunnelMessage>, payload: Buffer): Promise<{ received: Buffer; closes: string[] }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const closes: string[] = [];
      stream.on('data', (m: TunnelMessage) => {
        if (m.data !== undefined) chunks.push(m.data);
        if (m.close !== undefined) closes.push(m.close.error);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve({ received: Buffer.concat(chunks), closes }));
      let offset = 0;
      const pump = (): void => {
        while (offset < payload.length) {
          const chunk = payload.subarray(offset, offset + 16 * 1024);
          offset += chunk.length;
          if (!stream.write({ data: chunk })) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.write({ close: { error: '' } });
        stream.end();
      };
      // Half-close only after sending everything; the other direction keeps flowing.
      setImmediate(pump);
    });
  }

  const agentStream = client.tunnel();
  agentStream.write({ open: { sessionId: agent.sessionId, connectionId: 'conn-1', interceptId: ic.id, protocol: '', destination: '' } });
  const dial = await dialed;
  t.strictSame(dial, { connectionId: 'conn-1', interceptId: ic.id, localPort: 3000, source: '10.0.0.9', containerPort: undefined });
  const agentSide = endpoint(agentStream, toClient);
  const clientStream = client.tunnel();
  clientStream.write({ open: { sessionId: a.sessionId, connectionId: 'conn-1', interceptId: '', protocol: '', destination: '' } });
  const clientSide = endpoint(clientStream, toAgent);
  const [atAgent, atClient] = await Promise.all([agentSide, clientSide]);
  t.ok(atClient.received.equals(toClient), `the client got the agent's 1 MiB (${atClient.received.length} bytes)`);
  t.ok(atAgent.received.equals(toAgent), `the agent got the client's 1 MiB (${atAgent.received.length} bytes)`);
  t.strictSame(atClient.closes, [''], 'one clean close each way');
  t.strictSame(atAgent.closes, ['']);
  dials.cancel();
});

t.test('Tunnel: a client that never dials fails the agent after 10 s', async (t) => {
  const { client, kube, clock } = await startManager(t);
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, kube.services, build)) });
  const a = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const agent = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  const ic = await call<CreateInterceptRequest, InterceptInfo>(client.createIntercept.bind(client), { session: a, spec: spec() });
  const stream = client.tunnel();
  const failed = new Promise<ServiceError>((resolve) => stream.on('error', resolve));
  stream.on('data', () => undefined);
  stream.write({ open: { sessionId: agent.sessionId, connectionId: 'c', interceptId: ic.id, protocol: '', destination: '' } });
  await eventually(() => clock.pending >= 3);
  // Keep both sessions alive past the pairing timeout, which is as long as a session's expiry.
  clock.advance(9_000);
  await call(client.remain.bind(client), a);
  await call(client.remain.bind(client), agent);
  clock.advance(1_000);
  const err = await failed;
  t.equal(err.code, status.UNAVAILABLE);
  t.equal(err.metadata.get('tp-error-code')[0], 'dial-timeout');
});

t.test('a stopping manager ends the agents\' ReportTraffic streams, so its graceful shutdown finishes at once', async (t) => {
  const { client, state, handle, server } = await startManager(t);
  await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  const ended = new Promise<ServiceError | null>((resolve) => {
    const report = client.reportTraffic((err) => resolve(err));
    report.on('error', () => undefined);
  });
  await eventually(() => handle.clientStreams === 1);
  state.close();
  handle.endClientStreams();
  t.equal(await ended, null, 'the stream ended with OK');
  t.equal(handle.clientStreams, 0);
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  t.pass('tryShutdown finished with no stream left open');
});

t.test('ReportTraffic feeds WatchTraffic; the watch ends with intercept-ended when the intercept goes', async (t) => {
  const { client, kube, state } = await startManager(t);
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, kube.services, build)) });
  const a = await call<typeof alice, SessionInfo>(client.arriveAsClient.bind(client), alice);
  const agent = await call<ReturnType<typeof agentInfo>, SessionInfo>(client.arriveAsAgent.bind(client), agentInfo());
  const ic = await call<CreateInterceptRequest, InterceptInfo>(client.createIntercept.bind(client), { session: a, spec: spec() });
  const watch = client.watchTraffic({ session: a, interceptId: ic.id, bodyBytes: 0 });
  const seen = collect(watch);
  await eventually(() => state.interceptById(ic.id)?.watchers === 1);
  const report = client.reportTraffic(() => undefined);
  const ev = (path: string) => ({ interceptId: ic.id, kind: 'http', startedAt: 1, durationMs: 2, podName: '', source: '10.0.0.5:1', answeredBy: 'app', bytesIn: 0, bytesOut: 0, method: 'GET', path, status: 200, requestHeaders: [], responseHeaders: [], requestBody: Buffer.alloc(0), responseBody: Buffer.alloc(0), error: '', droppedBytes: 0 });
  report.write({ session: agent, events: [ev('/one'), ev('/two')] });
  const got: string[] = [];
  watch.on('data', (e: { path: string; podName: string }) => got.push(`${e.path} ${e.podName}`));
  await eventually(() => got.length === 2);
  t.strictSame(got, ['/one web-1', '/two web-1'], 'in order, with the agent’s pod');
  await call(client.removeIntercept.bind(client), { session: a, name: 'web-default' });
  const { error } = await seen;
  t.equal(error?.metadata.get('tp-error-code')[0], 'intercept-ended');
  const gone = await collect(client.watchTraffic({ session: a, interceptId: ic.id, bodyBytes: 0 }));
  t.match(gone.error, { code: status.INVALID_ARGUMENT, details: /no intercept/ }, 'a watch of an intercept that is gone is refused');
  report.end();
});
