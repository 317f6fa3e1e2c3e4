import t from 'tap';
import { buildAgentConfig, type BuildOptions } from '../../src/manager/agent-config-builder.js';
import {
  POD_SECURITY_ENFORCE_LABEL,
  ROUTING_PROBES_MAX,
  ROUTING_PROBES_PER_POD,
  ROUTING_RETRY_MS,
  ROUTING_WAIT_MS,
  explainTimeout,
  prepareIntercept,
  routingProbesInARow,
  type PrepareDeps,
} from '../../src/manager/prepare.js';
import { AgentConfigWatcher } from '../../src/manager/rollout.js';
import { State } from '../../src/manager/state.js';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { serializeAgentConfig } from '@telepresence-ts/core/agent-config';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, event, pod } from './fake-kube.js';
import { service, workload } from './fixtures.js';

const build: BuildOptions = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' };
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
const web = workload('web', [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }] }]);
const webRef = { kind: 'Deployment' as const, name: 'web', namespace: 'default' };

/** Lets queued promise callbacks (fake Kubernetes calls, the watcher) run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

function setup(services = [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })]) {
  const kube = new FakeKube();
  kube.workloads.push(web);
  kube.services.push(...services);
  const clock = new FakeClock();
  const state = new State(clock);
  const watcher = new AgentConfigWatcher({ kube, clock, log: createLogger('m', 'error', () => undefined) });
  watcher.start();
  const deps: PrepareDeps = { kube, state, clock, build, timeoutMs: 120_000 };
  const hash = services.length === 0 ? '' : agentConfigHash(buildAgentConfig(web, kube.services, build));
  const lines: string[] = [];
  return { kube, clock, state, watcher, deps, hash, lines, progress: (l: string) => void lines.push(l) };
}

t.test('rolls out, waits for a ready pod whose agent arrived, and resolves the spec', async (t) => {
  const { kube, state, deps, hash, lines, progress, clock } = setup();
  kube.setPods(webRef, [pod('web-old')]);
  kube.onRestart = () => kube.setPods(webRef, [pod('web-old', { deleting: true }), pod('web-new', { agent: true, hash, ready: false })]);
  const result = prepareIntercept(deps, spec(), progress);
  await flush();
  t.strictSame(kube.calls, ['apply default/web', 'restart default/Deployment/web']);
  kube.setPods(webRef, [pod('web-new', { agent: true, hash })]);
  clock.advance(1000);
  await flush();
  state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  const prepared = await result;
  t.strictSame(prepared, {
    spec: { ...spec(), name: 'web-default', workloadKind: 'Deployment', serviceName: 'web', servicePort: 'http', containerName: 'app' },
    target: { serviceName: 'web', serviceUid: 'uid-web', servicePortName: 'http', servicePort: 80, protocol: 'TCP', containerName: 'app', containerPort: 8080, agentPort: 9901, sharedWith: [] },
    podName: 'web-new',
    rolledOut: true,
  });
  t.strictSame(lines, [
    'wrote the traffic-agent configuration of deployment/web; replacing its pods',
    'waiting for deployment/web: 0 pod(s) with the agent, 0 ready, 0 arrived, 1 still without it',
    'waiting for deployment/web: 1 pod(s) with the agent, 1 ready, 0 arrived',
  ]);
  t.equal(clock.pending, 1, 'the prepare’s timers are cancelled: only the agent session’s expiry is left');
});

t.test('a change to one of the workload’s pods is seen at once, not at the next poll', async (t) => {
  const { kube, state, deps, hash, progress, clock } = setup();
  kube.setPods(webRef, [pod('web-old')]);
  kube.onRestart = () => kube.setPods(webRef, [pod('web-old'), pod('web-new', { agent: true, hash, ready: false })]);
  const result = prepareIntercept(deps, spec(), progress);
  let settled = false;
  void result.then(() => (settled = true));
  await flush();
  t.equal(kube.podWatches, 1, 'the workload’s pods are watched while the prepare waits');
  state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  await flush();
  t.notOk(settled, 'the new pod is not ready and the old one still serves');
  // The new pod turns Ready and the old one goes, with no time passing on the clock.
  const fresh = pod('web-new', { agent: true, hash, labels: { app: 'web' } });
  kube.setPods(webRef, [pod('web-old', { deleting: true }), fresh]);
  kube.emitPod('MODIFIED', pod('elsewhere', { labels: { app: 'other' } }));
  await flush();
  t.notOk(settled, 'a pod of another workload is not the workload’s change');
  kube.emitPod('MODIFIED', fresh);
  t.equal((await result).podName, 'web-new');
  t.equal(kube.podWatches, 0, 'the watch is stopped once the prepare is done');
  t.equal(clock.pending, 1, 'and so are its timers: only the agent session’s expiry is left');
});

t.test('with several replicas, waits until no live pod is left without the agent', async (t) => {
  const { kube, state, deps, hash, lines, progress, clock } = setup();
  kube.setPods(webRef, [pod('web-old-1'), pod('web-old-2')]);
  // Mid-rollout: one new pod is ready with its agent, one old pod still serves the Service.
  kube.onRestart = () => kube.setPods(webRef, [pod('web-old-1'), pod('web-new-1', { agent: true, hash })]);
  const result = prepareIntercept(deps, spec(), progress);
  let settled = false;
  void result.then(() => (settled = true));
  await flush();
  state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new-1', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  clock.advance(1000);
  await flush();
  t.notOk(settled, 'not done while web-old-1 still takes traffic');
  kube.setPods(webRef, [pod('web-old-1', { deleting: true }), pod('web-new-1', { agent: true, hash }), pod('web-new-2', { agent: true, hash })]);
  clock.advance(1000);
  await flush();
  t.equal((await result).podName, 'web-new-1', 'done once every live pod carries the agent');
  t.ok(lines.some((l) => l.endsWith('1 still without it')), 'the progress line says what it waits for');
});

/** A Service with a virtual IP, as the API server gives one, for the routing probes. */
const webWithIp = () => {
  const svc = service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' });
  return { ...svc, spec: { ...svc.spec, clusterIP: '10.96.0.10' } };
};

/** A probe that answers from `script` in order (then `rest`), recording where each one went. */
function scriptedProbe(script: boolean[], rest: boolean) {
  const calls: string[] = [];
  const probe = (address: string, port: number): Promise<boolean> => {
    calls.push(`${address}:${port}`);
    return Promise.resolve(script.shift() ?? rest);
  };
  return { calls, probe };
}

/** Starts a prepare that rolls web out and has its new pod ready with an arrived agent. */
async function rolledOut(s: ReturnType<typeof setup>, probe: PrepareDeps['probeRouting'], signal?: AbortSignal) {
  s.kube.setPods(webRef, [pod('web-old')]);
  s.kube.onRestart = () => s.kube.setPods(webRef, [pod('web-new', { agent: true, hash: s.hash })]);
  const result = prepareIntercept({ ...s.deps, probeRouting: probe }, spec(), s.progress, signal);
  let settled = false;
  void result.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flush();
  s.state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  await flush();
  /** Moves the clock on by `step` until the prepare is done, at most `limitMs` in all. */
  const runClock = async (step: number, limitMs: number): Promise<void> => {
    for (let spent = 0; !settled && spent <= limitMs; spent += step) {
      s.clock.advance(step);
      await flush();
    }
  };
  return { result, runClock, settled: () => settled };
}

t.test('after a rollout, answers once the Service’s connections reach agents only', async (t) => {
  const s = setup([webWithIp()]);
  // The old pod is still in kube-proxy's rules for a while: probes land here and there.
  const { calls, probe } = scriptedProbe([false, true, true, true, false], true);
  const { result, runClock } = await rolledOut(s, probe);
  await runClock(ROUTING_RETRY_MS, ROUTING_WAIT_MS);
  const prepared = await result;
  t.equal(prepared.podName, 'web-new');
  t.equal(calls.length, 5 + ROUTING_PROBES_PER_POD, 'a miss starts the count again');
  t.ok(
    calls.every((c) => c === '10.96.0.10:80'),
    'every probe goes to the Service’s virtual IP and the intercepted port',
  );
  t.strictSame(
    s.lines.filter((l) => l.includes('Service web:80')),
    ['waiting for Service web:80 to send its connections to the pods with the agent'],
    'one progress line says what is awaited',
  );
  t.equal(s.clock.pending, 1, 'no timer of the wait is left: only the agent session’s expiry');
});

t.test('with two new pods, twice the probes in a row', async (t) => {
  const s = setup([webWithIp()]);
  const { calls, probe } = scriptedProbe([], true);
  s.kube.setPods(webRef, [pod('web-old')]);
  s.kube.onRestart = () => s.kube.setPods(webRef, [pod('web-new-1', { agent: true, hash: s.hash }), pod('web-new-2', { agent: true, hash: s.hash })]);
  const result = prepareIntercept({ ...s.deps, probeRouting: probe }, spec(), s.progress);
  await flush();
  s.state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new-1', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  await result;
  t.equal(calls.length, 2 * ROUTING_PROBES_PER_POD);
});

t.test('the probes needed in a row grow with the pods, up to a bound', async (t) => {
  const cases = [
    { pods: 0, want: ROUTING_PROBES_PER_POD },
    { pods: 1, want: ROUTING_PROBES_PER_POD },
    { pods: 3, want: 3 * ROUTING_PROBES_PER_POD },
    { pods: 500, want: ROUTING_PROBES_MAX },
  ];
  for (const c of cases) t.equal(routingProbesInARow(c.pods), c.want, `${c.pods} pod(s)`);
});

t.test('a Service that keeps sending connections elsewhere: answers after the wait, and says so', async (t) => {
  const s = setup([webWithIp()]);
  const { calls, probe } = scriptedProbe([], false);
  const { result, runClock } = await rolledOut(s, probe);
  await runClock(ROUTING_RETRY_MS, 2 * ROUTING_WAIT_MS);
  t.equal((await result).podName, 'web-new', 'the intercept still goes ahead: the pods are in place');
  t.equal(calls.length, ROUTING_WAIT_MS / ROUTING_RETRY_MS, 'probes are spaced out after each miss');
  t.equal(
    s.lines.at(-1),
    'Service web:80 still sends some connections to pods without the agent after 5 s (old pods on their way out, or pods of another workload it selects); those requests reach the app',
  );
  t.ok(s.kube.maps.get('default')?.web, 'the configuration stays');
});

t.test('a rollout that another prepare began is waited out the same way', async (t) => {
  const s = setup([webWithIp()]);
  // The entry is written already, and its rollout is under way: the old pod still serves.
  s.kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, s.kube.services, build)) });
  s.kube.setPods(webRef, [pod('web-old'), pod('web-new', { agent: true, hash: s.hash })]);
  s.state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-new', podIp: '10.0.0.9', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  const { calls, probe } = scriptedProbe([false], true);
  const result = prepareIntercept({ ...s.deps, probeRouting: probe }, spec(), s.progress);
  await flush();
  s.kube.setPods(webRef, [pod('web-old', { deleting: true }), pod('web-new', { agent: true, hash: s.hash })]);
  s.clock.advance(1000);
  await flush();
  s.clock.advance(ROUTING_RETRY_MS);
  const prepared = await result;
  t.equal(prepared.rolledOut, false, 'this prepare rolled nothing out');
  t.strictSame(s.kube.calls, [], 'and wrote nothing');
  t.equal(calls.length, 1 + ROUTING_PROBES_PER_POD, 'but it waited for the Service all the same');
});

t.test('no probes: no rollout, a headless Service, or no way for agents to tell the probes', async (t) => {
  const headless = () => {
    const svc = webWithIp();
    return { ...svc, spec: { ...svc.spec, clusterIP: 'None' } };
  };
  const cases = [
    { name: 'agent already in place', services: [webWithIp()], inPlace: true, probe: true },
    { name: 'headless Service', services: [headless()], inPlace: false, probe: true },
    { name: 'no probe given', services: [webWithIp()], inPlace: false, probe: false },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = setup(c.services);
      const { calls, probe } = scriptedProbe([], false);
      if (c.inPlace) {
        s.kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, s.kube.services, build)) });
        s.kube.setPods(webRef, [pod('web-1', { agent: true, hash: s.hash })]);
        s.state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-1', podIp: '', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
        await prepareIntercept({ ...s.deps, probeRouting: probe }, spec(), s.progress);
      } else {
        const { result } = await rolledOut(s, c.probe ? probe : undefined);
        await result;
      }
      t.strictSame(calls, [], 'nothing was probed');
      t.notOk(s.lines.some((l) => l.includes('Service web:80')), 'and nothing said about it');
    });
  }
});

t.test('aborted while waiting for the Service: cancelled, and the entry it wrote is removed', async (t) => {
  const s = setup([webWithIp()]);
  const { probe } = scriptedProbe([], false);
  const ac = new AbortController();
  const { result, runClock } = await rolledOut(s, probe, ac.signal);
  t.ok(s.lines.some((l) => l.startsWith('waiting for Service web:80')), 'the prepare is waiting for the Service');
  ac.abort();
  await runClock(ROUTING_RETRY_MS, ROUTING_WAIT_MS);
  await t.rejects(result, { code: 'cancelled' });
  t.strictSame(s.kube.maps.get('default'), {});
});

t.test('an agent already in place: no write, no rollout, at once', async (t) => {
  const { kube, state, deps, hash, lines, progress } = setup();
  kube.maps.set('default', { web: serializeAgentConfig(buildAgentConfig(web, kube.services, build)) });
  kube.setPods(webRef, [pod('web-1', { agent: true, hash })]);
  state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-1', podIp: '', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  const prepared = await prepareIntercept(deps, spec(), progress);
  t.equal(prepared.podName, 'web-1');
  t.equal(prepared.rolledOut, false);
  t.strictSame(kube.calls, []);
  t.strictSame(lines, []);
});

t.test('user errors come before anything is written', async (t) => {
  const twoPorts = [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 90, targetPort: 'grpc' }], { app: 'web' })];
  const cases = [
    { name: 'ambiguous port', services: twoPorts, spec: spec(), code: 'ambiguous-port' },
    { name: 'unknown port', services: twoPorts, spec: spec({ servicePort: 'x' }), code: 'unknown-port' },
    { name: 'unknown workload', services: twoPorts, spec: spec({ workloadName: 'nope' }), code: 'unknown-workload' },
    { name: 'unknown kind', services: twoPorts, spec: spec({ workloadKind: 'DaemonSet' }), code: 'unknown-workload-kind' },
    { name: 'kind filters', services: twoPorts, spec: spec({ workloadKind: 'statefulset' }), code: 'unknown-workload' },
    { name: 'no service', services: [], spec: spec(), code: 'no-service' },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, deps, progress } = setup(c.services);
      await t.rejects(prepareIntercept(deps, c.spec, progress), { category: 'user', code: c.code });
      t.strictSame(kube.calls, []);
    });
  }
  t.test('ambiguous workload', async (t) => {
    const { kube, deps, progress } = setup();
    kube.workloads.push(workload('web', [], { kind: 'StatefulSet' }));
    await t.rejects(prepareIntercept(deps, spec(), progress), {
      code: 'ambiguous-workload',
      message: '"web" names 2 workloads in namespace default: deployment/web, statefulset/web',
      hint: 'name the kind too, e.g. deployment/web',
    });
  });
});

t.test('a Pod Security level that would refuse the agent: refused before anything is written', async (t) => {
  const numeric = [service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'lb', port: 81, targetPort: 9090 }], { app: 'web' })];
  const named = [service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' })];
  const cases = [
    {
      name: 'baseline and a numeric targetPort: the init container',
      services: numeric,
      level: 'baseline',
      message: 'namespace default enforces Pod Security "baseline", which refuses the NET_ADMIN init container that the traffic-agent needs for Service ports with a numeric targetPort (web:81 -> app:9090)',
      hint: /^name the container port and use that name as the targetPort of the Service.*kubectl label namespace default pod-security\.kubernetes\.io\/enforce=privileged --overwrite$/,
    },
    {
      name: 'restricted and a numeric targetPort: the init container too',
      services: numeric,
      level: 'restricted',
      message: /^namespace default enforces Pod Security "restricted", which refuses the NET_ADMIN init container/,
      hint: /enforce=privileged --overwrite$/,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const { kube, deps, progress } = setup(c.services);
      kube.namespaceLabelsOf.set('default', { [POD_SECURITY_ENFORCE_LABEL]: c.level });
      await t.rejects(prepareIntercept(deps, spec({ servicePort: 'http' }), progress), { category: 'config', code: 'pod-security', message: c.message, hint: c.hint });
      t.strictSame(kube.calls, [], 'nothing written');
    });
  }
  for (const [name, level, services] of [
    ['baseline with named target ports only', 'baseline', named],
    ['restricted with named target ports only', 'restricted', named],
    ['privileged', 'privileged', numeric],
  ] as const) {
    t.test(`${name}: no objection`, async (t) => {
      const { kube, deps, progress } = setup([...services]);
      kube.namespaceLabelsOf.set('default', { [POD_SECURITY_ENFORCE_LABEL]: level });
      const aborted = new AbortController();
      const prepared = prepareIntercept(deps, spec({ servicePort: 'http' }), progress, aborted.signal);
      await flush();
      t.match(kube.calls, ['apply default/web'], 'the configuration is written');
      aborted.abort();
      await t.rejects(prepared, { code: 'cancelled' });
    });
  }
});

t.test('on timeout: explains from events and pods, and removes the entry it wrote', async (t) => {
  const cases: ReadonlyArray<{ name: string; after: (s: ReturnType<typeof setup>) => void; message: RegExp; hint: RegExp }> = [
    {
      name: 'image pull failure',
      after: ({ kube, hash }) => {
        kube.setPods(webRef, [pod('web-new', { agent: true, hash, phase: 'Pending', ready: false })]);
        kube.events.push(event({ kind: 'Pod', name: 'web-new' }, 'Failed', 'Failed to pull image "tp-local/traffic-agent:0.1.0": ErrImagePull'));
      },
      message: /^timed out after 120 s waiting for the traffic-agent of deployment\/web: pod web-new cannot pull an image: Failed to pull image .*; pod web-new has the agent but is not ready$/,
      hint: /TP_AGENT_IMAGE/,
    },
    {
      name: 'quota on the ReplicaSet',
      after: ({ kube }) => {
        kube.events.push(event({ kind: 'ReplicaSet', name: 'web-6d4f9' }, 'FailedCreate', 'pods "web-6d4f9-x" is forbidden: exceeded quota: q, requested: cpu=1'));
      },
      message: /replicaset web-6d4f9 cannot create pods: pods "web-6d4f9-x" is forbidden: exceeded quota/,
      hint: /quota/,
    },
    {
      name: 'Pod Security set by the cluster, not by a namespace label',
      after: ({ kube }) => {
        kube.events.push(
          event({ kind: 'ReplicaSet', name: 'web-6d4f9' }, 'FailedCreate', 'pods "web-6d4f9-x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "tel-agent-init" must not include "NET_ADMIN" in securityContext.capabilities.add)'),
        );
      },
      message: /replicaset web-6d4f9 cannot create pods: .*violates PodSecurity "baseline:latest"/,
      hint: /^name the container port and use that name as the targetPort of the Service/,
    },
    {
      name: 'pods created without the agent',
      after: ({ kube, clock }) => kube.setPods(webRef, [pod('web-new', { created: new Date(clock.now()) })]),
      message: /the agent-injector webhook was not called for pod web-new: check the MutatingWebhookConfiguration and the injector's logs/,
      hint: /mutatingwebhookconfigurations/,
    },
    {
      name: 'an agent that never arrives',
      after: ({ kube, hash }) => kube.setPods(webRef, [pod('web-new', { agent: true, hash })]),
      message: /the traffic-agent of pod web-new did not arrive at the traffic-manager/,
      hint: /kubectl logs web-new -c traffic-agent/,
    },
    {
      name: 'nothing happened',
      after: () => undefined,
      message: /: no pod with the new agent configuration was created$/,
      hint: /kubectl describe deployment\/web/,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = setup();
      const result = prepareIntercept(s.deps, spec(), s.progress);
      result.catch(() => undefined);
      await flush();
      c.after(s);
      s.clock.advance(120_000);
      await flush();
      await t.rejects(result, { category: 'cluster', code: 'agent-timeout', message: c.message, hint: c.hint });
      t.strictSame(s.kube.maps.get('default'), {}, 'the entry is gone');
      t.ok(s.kube.calls.includes('remove default/web'), 'removed through the API');
    });
  }
});

t.test('a prepare that replaced an entry puts the old one back', async (t) => {
  const s = setup();
  s.kube.maps.set('default', { web: 'the old entry' });
  const result = prepareIntercept(s.deps, spec(), s.progress);
  result.catch(() => undefined);
  await flush();
  s.clock.advance(120_000);
  await flush();
  await t.rejects(result, { code: 'agent-timeout' });
  t.strictSame(s.kube.maps.get('default'), { web: 'the old entry' });
});

t.test('an aborted prepare stops waiting and cleans up', async (t) => {
  const s = setup();
  const ac = new AbortController();
  const result = prepareIntercept(s.deps, spec(), s.progress, ac.signal);
  result.catch(() => undefined);
  await flush();
  ac.abort();
  await t.rejects(result, { code: 'cancelled' });
  t.strictSame(s.kube.maps.get('default'), {});
});

t.test('explainTimeout ignores Normal events, other workloads, and old pods without the agent', async (t) => {
  const { reasons } = explainTimeout({
    workload: { kind: 'Deployment', name: 'web' },
    pods: [pod('web-old', { created: new Date(0) })],
    events: [event({ kind: 'Pod', name: 'web-1' }, 'Pulled', 'ok', 'Normal'), event({ kind: 'Pod', name: 'api-1' }, 'Failed', 'ErrImagePull')],
    hash: 'h',
    since: 1000,
    arrivedPods: new Set(),
  });
  t.strictSame(reasons, ['no pod with the new agent configuration was created']);
});

t.test('explainTimeout: one line per object and trouble (the newest), nothing from before the prepare', async (t) => {
  const at = (ms: number, e: ReturnType<typeof event>) => ({ ...e, lastTimestamp: new Date(ms) });
  const rs = { kind: 'ReplicaSet', name: 'web-6d4f9' };
  const { reasons, hint } = explainTimeout({
    workload: { kind: 'Deployment', name: 'web' },
    pods: [],
    events: [
      at(2000, event(rs, 'FailedCreate', 'exceeded quota: older retry')),
      at(3000, event(rs, 'FailedCreate', 'exceeded quota: newest retry')),
      at(500, event({ kind: 'Pod', name: 'web-old' }, 'Failed', 'ErrImagePull from an earlier rollout')),
    ],
    hash: 'h',
    since: 1000,
    arrivedPods: new Set(),
  });
  t.strictSame(reasons, ['replicaset web-6d4f9 cannot create pods: exceeded quota: newest retry']);
  t.match(hint, /quota/);
});
