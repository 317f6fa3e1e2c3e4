/**
 * Prepares that cannot succeed end at once and change nothing, or as little as can be: a workload
 * with no replica, an agent-injector that cannot be reached (checked before the write), and pods
 * that the restart created without the agent (seen as they appear).
 */
import t from 'tap';
import { buildAgentConfig, type BuildOptions } from '../../src/manager/agent-config-builder.js';
import { injectorProblem, readyEndpointCount, type InjectorHealthApi, type InjectorView } from '../../src/manager/injector-health.js';
import type { KubePod, KubeWorkload } from '../../src/manager/kube.js';
import { AGENT_NOT_INJECTED, prepareIntercept, workloadProblem, type PrepareDeps } from '../../src/manager/prepare.js';
import { AgentConfigWatcher } from '../../src/manager/rollout.js';
import { State } from '../../src/manager/state.js';
import { serializeAgentConfig, type WorkloadKind } from '@telepresence-ts/core/agent-config';
import { agentConfigHash } from '../../src/shared/agent-config-hash.js';
import { createLogger } from '../../src/shared/log.js';
import { FakeClock } from '../shared/fake-clock.js';
import { FakeKube, pod, type PodOptions } from './fake-kube.js';
import { service } from './fixtures.js';

const build: BuildOptions = { agentImage: 'tp-local/traffic-agent:0.1.0', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' };
const spec = { name: '', namespace: 'default', workloadName: 'web', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 3000, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] };
const webRef = { kind: 'Deployment' as const, name: 'web', namespace: 'default' };
const containers = [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }];

/** The web workload, with `spec.replicas` and template annotations as given. */
function web(o: { kind?: WorkloadKind; replicas?: number; annotations?: Record<string, string> } = {}): KubeWorkload {
  const labels = { app: 'web' };
  return {
    kind: o.kind ?? 'Deployment',
    name: 'web',
    namespace: 'default',
    object: {
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        ...(o.replicas === undefined ? {} : { replicas: o.replicas }),
        selector: { matchLabels: labels },
        template: { metadata: { labels, ...(o.annotations === undefined ? {} : { annotations: o.annotations }) }, spec: { containers } },
      },
    },
  };
}

const healthy: InjectorView = {
  namespace: 'tp-system',
  webhook: { failurePolicy: 'Ignore', excludedNamespaces: ['kube-system', 'tp-system'] },
  readyEndpoints: 1,
  deployment: { replicas: 1, readyReplicas: 1, troubles: [] },
};

/** An injector port that answers `views` in turn (the last one for ever) and counts the calls. */
function fakeInjector(...views: InjectorView[]): InjectorHealthApi & { calls: number } {
  const f = {
    calls: 0,
    inspect: () => {
      const view = views[Math.min(f.calls, views.length - 1)] ?? healthy;
      f.calls++;
      return Promise.resolve(view);
    },
  };
  return f;
}

/** A pod of the template that the watcher's restart stamped at `at`, labelled so pod watches see it. */
function restartedPod(name: string, at: string, o: PodOptions = {}): KubePod {
  const p = pod(name, { ...o, labels: { app: 'web' } });
  return { ...p, metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, 'telepresence.io/restarted-at': at } } };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

function setup(w: KubeWorkload = web(), injector: InjectorHealthApi = fakeInjector(healthy)) {
  const kube = new FakeKube();
  kube.workloads.push(w);
  kube.services.push(service('web', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'web' }));
  kube.setPods(webRef, [pod('web-old', { labels: { app: 'web' } })]);
  const clock = new FakeClock();
  const state = new State(clock);
  const watcher = new AgentConfigWatcher({ kube, clock, log: createLogger('m', 'error', () => undefined) });
  watcher.start();
  const deps: PrepareDeps = { kube, state, clock, build, timeoutMs: 120_000, injector, rollouts: watcher };
  const lines: string[] = [];
  return { kube, clock, state, watcher, deps, lines, progress: (l: string) => void lines.push(l) };
}

t.test('a workload with 0 replicas: refused at once, naming it and the fix, and nothing is written', async (t) => {
  for (const kind of ['Deployment', 'StatefulSet', 'ReplicaSet'] as const) {
    t.test(kind, async (t) => {
      const injector = fakeInjector(healthy);
      const s = setup(web({ kind, replicas: 0 }), injector);
      const ref = `${kind.toLowerCase()}/web`;
      await t.rejects(prepareIntercept(s.deps, spec, s.progress), {
        category: 'user',
        code: 'no-replicas',
        message: `${ref} in namespace default has 0 replicas: there is no pod to intercept`,
        hint: `scale it up first: kubectl scale ${ref} -n default --replicas=1`,
      });
      await s.watcher.idle();
      t.strictSame(s.kube.calls, [], 'no entry written, no restart');
      t.equal(injector.calls, 0, 'nothing else was asked');
    });
  }
  t.test('replicas left out mean one', async (t) => {
    t.equal(workloadProblem(web()), undefined);
    t.equal(workloadProblem(web({ replicas: 2 })), undefined);
  });
});

t.test('a pod template that opts out of injection: refused before anything is written', async (t) => {
  const s = setup(web({ annotations: { 'telepresence.io/inject-traffic-agent': 'disabled' } }));
  await t.rejects(prepareIntercept(s.deps, spec, s.progress), { category: 'user', code: 'injection-disabled', message: /deployment\/web has telepresence\.io\/inject-traffic-agent=disabled/ });
  t.strictSame(s.kube.calls, []);
});

t.test('an injector that cannot give the agent: refused before the entry is written, so nothing restarts', async (t) => {
  const cases: ReadonlyArray<{ name: string; view: InjectorView; category: string; code: string; message: RegExp; hint: RegExp }> = [
    {
      name: 'scaled to 0 replicas',
      view: { ...healthy, readyEndpoints: 0, deployment: { replicas: 0, readyReplicas: 0, troubles: [] } },
      category: 'cluster',
      code: 'injector-unavailable',
      message:
        /^deployment\/web cannot get the traffic-agent: the agent-injector Service in tp-system has no ready endpoint; with failurePolicy Ignore the API server then creates pods without the agent: deployment\/agent-injector is scaled to 0 replicas$/,
      hint: /^kubectl -n tp-system scale deployment\/agent-injector --replicas=1 \(then kubectl -n tp-system rollout status deployment\/agent-injector\)/,
    },
    {
      name: 'its pod not ready',
      view: { ...healthy, readyEndpoints: 0, deployment: { replicas: 1, readyReplicas: 0, troubles: ['Available: Deployment does not have minimum availability.'] } },
      category: 'cluster',
      code: 'injector-unavailable',
      message: /no ready endpoint.*: 0 of 1 pod\(s\) of deployment\/agent-injector ready \(Available: Deployment does not have minimum availability\.\)$/,
      hint: /kubectl -n tp-system rollout status deployment\/agent-injector; .*kubectl -n tp-system describe pods -l app\.kubernetes\.io\/name=agent-injector$/,
    },
    {
      name: 'its Deployment missing',
      view: { ...healthy, readyEndpoints: 0, deployment: 'missing' },
      category: 'config',
      code: 'injector-not-installed',
      message: /deployment\/agent-injector is missing$/,
      hint: /kubectl telepresence install/,
    },
    {
      name: 'the webhook configuration missing',
      view: { ...healthy, webhook: 'missing' },
      category: 'config',
      code: 'injector-not-installed',
      message: /the MutatingWebhookConfiguration agent-injector-webhook-tp-system is missing, so the API server never calls the agent-injector$/,
      hint: /kubectl telepresence install/,
    },
    {
      name: 'the namespace left out by the webhook',
      view: { ...healthy, webhook: { failurePolicy: 'Ignore', excludedNamespaces: ['kube-system', 'default'] } },
      category: 'config',
      code: 'namespace-not-injected',
      message: /leaves namespace default out/,
      hint: /outside kube-system and default/,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = setup(web(), fakeInjector(c.view));
      await t.rejects(prepareIntercept(s.deps, spec, s.progress), { category: c.category, code: c.code, message: c.message, hint: c.hint });
      await s.watcher.idle();
      t.strictSame(s.kube.calls, [], 'no entry written, no restart');
    });
  }
});

t.test('an injector that looks able, or cannot be read: the prepare goes ahead', async (t) => {
  const views: ReadonlyArray<[string, InjectorView]> = [
    ['healthy', healthy],
    ['nothing readable', { namespace: 'tp-system', webhook: 'unknown', readyEndpoints: 'unknown', deployment: 'unknown' }],
    ['endpoints unreadable', { ...healthy, readyEndpoints: 'unknown', deployment: { replicas: 0, readyReplicas: 0, troubles: [] } }],
  ];
  for (const [name, view] of views) {
    t.test(name, async (t) => {
      const s = setup(web(), fakeInjector(view));
      const ac = new AbortController();
      const result = prepareIntercept(s.deps, spec, s.progress, ac.signal);
      await flush();
      t.strictSame(s.kube.calls, ['apply default/web', 'restart default/Deployment/web'], 'written and rolled out');
      ac.abort();
      await t.rejects(result, { code: 'cancelled' });
    });
  }
});

t.test('an entry already in place needs no injector: a warm intercept goes ahead with it down', async (t) => {
  const injector = fakeInjector({ ...healthy, readyEndpoints: 0, deployment: { replicas: 0, readyReplicas: 0, troubles: [] } });
  const s = setup(web(), injector);
  const config = buildAgentConfig(web(), s.kube.services, build);
  s.kube.maps.set('default', { web: serializeAgentConfig(config) });
  s.kube.setPods(webRef, [pod('web-1', { agent: true, hash: agentConfigHash(config) })]);
  s.state.arriveAsAgent({ name: 'web', namespace: 'default', podName: 'web-1', podIp: '', version: '0.1.0', kind: 'Deployment', containers: [], sftpPort: 0, tunnelPort: 0 });
  const prepared = await prepareIntercept(s.deps, spec, s.progress);
  t.equal(prepared.podName, 'web-1');
  t.equal(injector.calls, 0, 'the injector was not asked');
  t.strictSame(s.kube.calls, []);
});

t.test('pods of the restart without the agent: fails at once, after one restart, and removes the entry', async (t) => {
  const cases: ReadonlyArray<{ name: string; later: InjectorView; category: string; message: RegExp; hint: RegExp }> = [
    {
      name: 'the injector looks healthy: its call failed open',
      later: healthy,
      category: 'cluster',
      message:
        /^pod\(s\) web-new of deployment\/web were created without the traffic-agent: the agent-injector has 1 ready endpoint\(s\) and its webhook configuration is in place, so the API server's call to it failed \(TLS, a timeout, an error answer\) and failurePolicy Ignore let the pods through without the agent, or the injector had not yet seen the new entry; its entry in the agents ConfigMap is removed again, and its pods keep running without the agent \(no further restart\)$/,
      hint: /kubectl -n tp-system logs deploy\/agent-injector; .*kubectl get mutatingwebhookconfiguration agent-injector-webhook-tp-system -o yaml/,
    },
    {
      name: 'the injector went away after the check',
      later: { ...healthy, readyEndpoints: 0, deployment: { replicas: 0, readyReplicas: 0, troubles: [] } },
      category: 'cluster',
      message: /created without the traffic-agent: the agent-injector Service in tp-system has no ready endpoint.*scaled to 0 replicas; its entry .* is removed again/,
      hint: /--replicas=1/,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = setup(web(), fakeInjector(healthy, c.later));
      s.kube.setPods(webRef, [pod('web-old', { labels: { app: 'web' } })]);
      s.kube.onRestart = (_ref, at) => {
        const fresh = restartedPod('web-new', at, { phase: 'Pending', ready: false });
        s.kube.setPods(webRef, [pod('web-old', { labels: { app: 'web' } }), fresh]);
        s.kube.emitPod('ADDED', fresh);
      };
      const result = prepareIntercept(s.deps, spec, s.progress);
      result.catch(() => undefined);
      await flush();
      // No time passes on the clock: the pod's creation alone ends the wait.
      await t.rejects(result, { category: c.category, code: AGENT_NOT_INJECTED, message: c.message, hint: c.hint });
      await s.watcher.idle();
      t.strictSame(s.kube.calls, ['apply default/web', 'restart default/Deployment/web', 'remove default/web'], 'one restart, and the entry removed without another');
      t.strictSame(s.kube.maps.get('default'), {}, 'no entry is left');
      t.equal(s.kube.podWatches, 0, 'the pod watch is stopped');
      t.equal(s.clock.pending, 0, 'and every timer of the wait');
    });
  }
});

t.test('pods that replace evicted ones without the agent: fails at once, after one eviction, said as it happens', async (t) => {
  const s = setup(web({ replicas: 2 }));
  s.kube.setPods(webRef, [pod('web-a', { labels: { app: 'web' } }), pod('web-b', { labels: { app: 'web' } })]);
  s.kube.onEvict = (_ns, name) => {
    const fresh = pod(`${name}-new`, { labels: { app: 'web' }, phase: 'Pending', ready: false });
    queueMicrotask(() => {
      s.kube.setPods(webRef, [...(s.kube.pods.get('default/Deployment/web') ?? []), fresh]);
      s.kube.emitPod('ADDED', fresh);
    });
    return { outcome: 'evicted' };
  };
  const result = prepareIntercept(s.deps, spec, s.progress);
  result.catch(() => undefined);
  await t.rejects(result, { code: AGENT_NOT_INJECTED, message: /^pod\(s\) web-a-new of deployment\/web were created without the traffic-agent/ });
  await s.watcher.idle();
  t.strictSame(s.kube.calls, ['apply default/web', 'evict default/web-a', 'remove default/web'], 'one eviction, and the entry removed');
  t.equal(s.lines[0], 'wrote the traffic-agent configuration of deployment/web; replacing its pods');
  t.ok(s.lines.includes('evicted pod web-a of deployment/web (1 of 2)'), 'the eviction is passed on as progress');
  t.equal(s.kube.podWatches, 0, 'every pod watch is stopped');
});

t.test('an entry that was replaced is put back, and the message says so', async (t) => {
  const s = setup();
  s.kube.maps.set('default', { web: 'the old entry' });
  s.kube.onRestart = (_ref, at) => {
    const fresh = restartedPod('web-new', at);
    s.kube.setPods(webRef, [fresh]);
    s.kube.emitPod('ADDED', fresh);
  };
  const result = prepareIntercept(s.deps, spec, s.progress);
  result.catch(() => undefined);
  await flush();
  await t.rejects(result, { code: AGENT_NOT_INJECTED, message: /the entry it had in the agents ConfigMap before this prepare is back$/ });
  t.strictSame(s.kube.maps.get('default'), { web: 'the old entry' });
});

t.test('pods without the agent that are not of the restart do not end the wait', async (t) => {
  const s = setup();
  // A pod of an earlier restart (stamped before the entry was written) and one never restarted.
  const earlier = restartedPod('web-earlier', new Date(s.clock.now() - 60_000).toISOString());
  s.kube.setPods(webRef, [earlier, pod('web-plain', { labels: { app: 'web' } })]);
  s.kube.onRestart = () => undefined;
  const ac = new AbortController();
  const result = prepareIntercept(s.deps, spec, s.progress, ac.signal);
  await flush();
  s.kube.emitPod('MODIFIED', earlier);
  s.clock.advance(5000);
  await flush();
  ac.abort();
  await t.rejects(result, { code: 'cancelled' }, 'still waiting until cancelled');
});

t.test('pods of the restart without the agent while the entry is gone (removed by another client) do not end the wait', async (t) => {
  const s = setup();
  s.kube.onRestart = (_ref, at) => {
    // Someone removes the entry right after the rollout began: pods without the agent are right.
    s.kube.maps.set('default', {});
    const fresh = restartedPod('web-new', at);
    s.kube.setPods(webRef, [fresh]);
    s.kube.emitPod('ADDED', fresh);
  };
  const ac = new AbortController();
  const result = prepareIntercept(s.deps, spec, s.progress, ac.signal);
  await flush();
  s.clock.advance(2000);
  await flush();
  ac.abort();
  await t.rejects(result, { code: 'cancelled' });
});

t.test('injectorProblem: nothing to say of an injector with ready endpoints and its webhook', async (t) => {
  t.equal(injectorProblem(healthy, 'default'), undefined);
  t.equal(injectorProblem({ ...healthy, readyEndpoints: 3, deployment: 'unknown' }, 'default'), undefined);
  t.match(injectorProblem({ ...healthy, webhook: 'unknown', readyEndpoints: 0, deployment: 'unknown' }, 'default'), {
    code: 'injector-unavailable',
    reason: 'the agent-injector Service in tp-system has no ready endpoint',
  });
});

t.test('readyEndpointCount: ready or unset counts, not ready does not, a slice without endpoints is none', async (t) => {
  const slice = (endpoints?: Array<{ ready?: boolean }>) => ({
    addressType: 'IPv4',
    metadata: { name: 'agent-injector-x' },
    ...(endpoints === undefined ? {} : { endpoints: endpoints.map((e, i) => ({ addresses: [`10.0.0.${i}`], conditions: e.ready === undefined ? {} : { ready: e.ready } })) }),
  });
  // The API server leaves `endpoints` out for a Service with no pod (the injector scaled to 0).
  t.equal(readyEndpointCount([slice()] as never), 0);
  t.equal(readyEndpointCount([slice([{ ready: false }])] as never), 0, 'a terminating pod');
  t.equal(readyEndpointCount([slice([{ ready: true }, {}]), slice([{ ready: false }])] as never), 2);
});
