/**
 * PrepareIntercept (ADR 0002, "Prepare"): find the workload, build and write its agent
 * configuration, resolve the spec to one connection, and wait until a pod with that configuration
 * is Ready and its agent has arrived. A prepare that fails leaves the ConfigMap as it found it.
 * What would make the wait hopeless is refused before anything is written (a workload with no
 * replica, an agent-injector that cannot be reached), and pods that the restart creates without
 * the agent end the wait at once.
 */
import { ANNOTATIONS, ENV_AGENT_IMAGE } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import type { InterceptSpec, PreparedIntercept } from '@telepresence-ts/proto/manager/v1';
import { agentConfigHash } from '../shared/agent-config-hash.js';
import {
  WORKLOAD_KINDS,
  allIntercepts,
  parseAgentConfig,
  replacedContainers,
  serializeAgentConfig,
  withReplaced,
  type AgentConfig,
  type WorkloadKind,
} from '@telepresence-ts/core/agent-config';
import { isReplace } from '@telepresence-ts/core/engagement';
import type { Clock } from '../shared/clock.js';
import { buildAgentConfig, replacePorts, resolveTarget, resolvedSpec, toInterceptTarget, workloadRef, type BuildOptions } from './agent-config-builder.js';
import { injectorProblem, webhookConfigurationName, type InjectorHealthApi } from './injector-health.js';
import type { KubeApi, KubeEvent, KubePod, KubeWorkload } from './kube.js';
import { desiredReplicas, isLivePod, isReadyPod, podConfigHash, podHasAgent, refOf, type RolloutNotice } from './rollout.js';
import type { State } from './state.js';

/** How often the pods are listed while waiting; agent arrivals are seen at once (State events). */
export const PREPARE_POLL_MS = 1000;

/**
 * Dials `address:port` once from the traffic-manager's pod and tells whether a traffic-agent
 * answered it as a routing probe (`ROUTING_PROBE_REPLY`). Never rejects.
 */
export type RoutingProbe = (address: string, port: number) => Promise<boolean>;

/**
 * Probes that must land on an agent in a row, per pod with the agent, before the Service counts
 * as routing to the new pods only. kube-proxy picks an endpoint at random per connection: while
 * one old pod is left beside N new ones, 10 N probes in a row all miss it with a chance of
 * (N / (N + 1))^(10 N): under 1 in 1000 up to the ten pods that `ROUTING_PROBES_MAX` allows for
 * (1 in 130 at twenty pods); with round-robin, never.
 */
export const ROUTING_PROBES_PER_POD = 10;
/** At most this many in a row, whatever the number of pods: a hundred take about a tenth of a second. */
export const ROUTING_PROBES_MAX = 100;

/** How many probes in a row must reach an agent, for a workload with `pods` pods with the agent. */
export function routingProbesInARow(pods: number): number {
  return Math.min(ROUTING_PROBES_PER_POD * Math.max(1, pods), ROUTING_PROBES_MAX);
}
/**
 * How long a prepare that rolled the workload out waits for its Service to route to the new pods
 * only, before it answers anyway: kube-proxy rewrites its rules at most once a second by default.
 */
export const ROUTING_WAIT_MS = 5000;
/** A probe after a failed one starts no sooner than this after it: a refused connection fails at once. */
export const ROUTING_RETRY_MS = 50;

export interface PrepareDeps {
  readonly kube: KubeApi;
  readonly state: Pick<State, 'agents' | 'onAgentsChanged'>;
  readonly clock: Clock;
  readonly build: BuildOptions;
  /** How long to wait for a pod with the agent (ADR: bounded, default 120 s). */
  readonly timeoutMs: number;
  /**
   * Checks, after a rollout, that the Service sends its connections to pods with the agent only.
   * Undefined when agents could not tell this manager's probes (it knows no address of its pod):
   * the prepare then answers as soon as the pods are there.
   */
  readonly probeRouting?: RoutingProbe;
  /**
   * What can be seen of the agent-injector: checked before a write that needs new pods, and read
   * to say why pods came without the agent. Undefined in tests that do not need it: the prepare
   * then skips the check and says less.
   */
  readonly injector?: InjectorHealthApi;
  /**
   * The ConfigMap watcher's lines about restarts (evictions, a rollout and why), passed on as
   * progress while the prepare waits. Undefined in tests that do not need them.
   */
  readonly rollouts?: { onNotice(listener: RolloutNotice): () => void };
  /**
   * The replaces in force: the entry is written with their containers marked replaced (so that
   * an intercept's prepare keeps them so), a replace's or intercept's conflict with one is refused
   * before anything is written, and a replace holds its container while it is prepared.
   * Undefined in tests that do not need them: nothing is marked then.
   */
  readonly replaces?: {
    readonly sessionId: string;
    readonly state: Pick<State, 'replaceConflict' | 'replacedContainers' | 'holdReplace' | 'releaseReplace'>;
  };
}

/** Finds the one workload the spec names: `unknown-workload` / `ambiguous-workload` otherwise. */
export async function findWorkload(kube: KubeApi, spec: InterceptSpec): Promise<KubeWorkload> {
  if (spec.workloadName === '') throw new TpError('user', 'missing-workload', 'the intercept names no workload');
  if (spec.namespace === '') throw new TpError('user', 'missing-namespace', 'the intercept names no namespace');
  let kind: WorkloadKind | undefined;
  if (spec.workloadKind !== '') {
    kind = WORKLOAD_KINDS.find((k) => k.toLowerCase() === spec.workloadKind.toLowerCase());
    if (kind === undefined) {
      throw new TpError('user', 'unknown-workload-kind', `"${spec.workloadKind}" is not a workload kind telepresence can intercept`, {
        hint: `use one of ${WORKLOAD_KINDS.join(', ')}`,
      });
    }
  }
  const found = await kube.findWorkloads(spec.namespace, spec.workloadName, kind);
  const only = found[0];
  if (found.length === 1 && only !== undefined) return only;
  if (found.length === 0) {
    const kinds = kind ?? 'Deployment, ReplicaSet or StatefulSet';
    throw new TpError('user', 'unknown-workload', `no ${kinds} named "${spec.workloadName}" in namespace ${spec.namespace}`, {
      hint: `see what can be intercepted with kubectl telepresence list -n ${spec.namespace}`,
    });
  }
  throw new TpError('user', 'ambiguous-workload', `"${spec.workloadName}" names ${found.length} workloads in namespace ${spec.namespace}: ${found.map(workloadRef).join(', ')}`, {
    hint: `name the kind too, e.g. ${workloadRef(found[0]!)}`,
  });
}

/** The namespace label by which Pod Security admission enforces a level. */
export const POD_SECURITY_ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';

/** What a Pod Security refusal of the agent's pods means, and the ways out. */
function podSecurityHint(namespace: string): string {
  return (
    'name the container port and use that name as the targetPort of the Service, so the agent needs no init container; ' +
    `or let the namespace run it: kubectl label namespace ${namespace} ${POD_SECURITY_ENFORCE_LABEL}=privileged --overwrite`
  );
}

/**
 * The error a prepare must give up with before it writes anything, when the namespace's Pod
 * Security level would refuse the pods with the agent: `baseline` and `restricted` refuse the
 * NET_ADMIN init container that numeric target ports need (the agent container itself meets
 * `restricted`). Pure, for tests. Levels set by the
 * cluster's admission configuration instead of a label are not seen here; the pods' FailedCreate
 * events then explain the timeout (`explainTimeout`).
 */
export function podSecurityProblem(config: AgentConfig, namespaceLabels: Readonly<Record<string, string>>): TpError | undefined {
  const level = namespaceLabels[POD_SECURITY_ENFORCE_LABEL] ?? 'privileged';
  if (level !== 'baseline' && level !== 'restricted') return undefined;
  const numeric = allIntercepts(config)
    .filter(({ intercept }) => intercept.targetPortNumeric)
    .map(({ container, intercept }) => `${intercept.serviceName}:${intercept.servicePort} -> ${container.name}:${intercept.containerPort}`);
  if (numeric.length === 0) return undefined;
  return new TpError(
    'config',
    'pod-security',
    `namespace ${config.namespace} enforces Pod Security "${level}", which refuses the NET_ADMIN init container that the traffic-agent ` +
      `needs for Service ports with a numeric targetPort (${numeric.join(', ')})`,
    { hint: podSecurityHint(config.namespace) },
  );
}

/**
 * The error a prepare must give up with at once, before it writes anything, when the workload
 * cannot have a pod with the agent whatever is written: it has no replica (nothing to intercept,
 * and a restart would change its template for nothing), or its pod template opts out of
 * injection. Pure, for tests.
 */
export function workloadProblem(workload: KubeWorkload): TpError | undefined {
  const name = workloadRef(workload);
  if (desiredReplicas(workload) === 0) {
    return new TpError('user', 'no-replicas', `${name} in namespace ${workload.namespace} has 0 replicas: there is no pod to intercept`, {
      hint: `scale it up first: kubectl scale ${name} -n ${workload.namespace} --replicas=1`,
    });
  }
  if (workload.object.spec?.template?.metadata?.annotations?.[ANNOTATIONS.injectTrafficAgent] === 'disabled') {
    return new TpError('user', 'injection-disabled', `the pod template of ${name} has ${ANNOTATIONS.injectTrafficAgent}=disabled, so its pods never get the traffic-agent`, {
      hint: `remove the annotation from the pod template of ${name} in namespace ${workload.namespace}`,
    });
  }
  return undefined;
}

/** The error code of pods that a restart created without the agent (the injector did not add it). */
export const AGENT_NOT_INJECTED = 'agent-not-injected';

/**
 * The error for pods of the restart without the agent: why, from what `injector` shows, and what
 * became of the entry (removed when the prepare wrote it, the earlier one put back when it
 * replaced one, left alone when another prepare wrote it).
 */
async function notInjectedError(deps: PrepareDeps, workload: KubeWorkload, pods: readonly string[], entry: 'removed' | 'restored' | 'kept'): Promise<TpError> {
  const name = workloadRef(workload);
  const view = await deps.injector?.inspect().catch(() => undefined);
  const problem = view === undefined ? undefined : injectorProblem(view, workload.namespace);
  const ns = view?.namespace ?? '<manager namespace>';
  let why: string;
  if (problem !== undefined) {
    why = problem.reason;
  } else if (view !== undefined && typeof view.readyEndpoints === 'number' && typeof view.webhook === 'object') {
    why =
      `the agent-injector has ${view.readyEndpoints} ready endpoint(s) and its webhook configuration is in place, so the API server's call ` +
      `to it failed (TLS, a timeout, an error answer) and failurePolicy ${view.webhook.failurePolicy} let the pods through without the agent, ` +
      'or the injector had not yet seen the new entry';
  } else {
    why = 'the agent-injector webhook was not called or failed, and failurePolicy Ignore let the pods through without the agent';
  }
  const after = {
    removed: 'its entry in the agents ConfigMap is removed again, and its pods keep running without the agent (no further restart)',
    restored: 'the entry it had in the agents ConfigMap before this prepare is back',
    kept: 'its entry in the agents ConfigMap was written before this prepare and is left as it is',
  }[entry];
  return new TpError(problem?.category ?? 'cluster', AGENT_NOT_INJECTED, `pod(s) ${pods.join(', ')} of ${name} were created without the traffic-agent: ${why}; ${after}`, {
    hint:
      problem?.hint ??
      `see whether the injector was called: kubectl -n ${ns} logs deploy/agent-injector; check the webhook's caBundle and service: ` +
        `kubectl get mutatingwebhookconfiguration ${webhookConfigurationName(ns)} -o yaml, or run \`kubectl telepresence install\` again`,
  });
}

const IMAGE_PULL = /ErrImagePull|ImagePullBackOff|Back-off pulling image|Failed to pull image/;

/**
 * Why no pod with the agent became ready, from the pods and the non-Normal events of the workload
 * and its ReplicaSets (their names start with the workload's). Pure, for tests.
 */
export function explainTimeout(input: {
  workload: Pick<KubeWorkload, 'kind' | 'name'>;
  pods: readonly KubePod[];
  events: readonly KubeEvent[];
  hash: string;
  /** Pods created before this were there before the prepare; only newer ones say the webhook was skipped. */
  since: number;
  arrivedPods: ReadonlySet<string>;
}): { reasons: string[]; hint: string } {
  const reasons: string[] = [];
  const hints: string[] = [];
  const lastSeen = (e: KubeEvent): number => (e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp)?.getTime() ?? Number.MAX_SAFE_INTEGER;
  // Warnings about the workload, its ReplicaSets and pods (names start with the workload's) seen
  // since the prepare began; older ones are about earlier rollouts.
  const relevant = input.events
    .filter((e) => e.type !== 'Normal' && (e.involvedObject.name ?? '').startsWith(input.workload.name) && lastSeen(e) >= input.since)
    .sort((a, b) => lastSeen(b) - lastSeen(a));
  const seen = new Set<string>();
  const once = (s: string): void => {
    if (!seen.has(s)) {
      seen.add(s);
      reasons.push(s);
    }
  };
  // One line per object and kind of trouble (the newest): a ReplicaSet retries FailedCreate a dozen times.
  const told = new Set<string>();
  const firstFor = (e: KubeEvent, kind: string): boolean => {
    const k = `${e.involvedObject.kind ?? ''}/${e.involvedObject.name ?? ''}/${kind}`;
    if (told.has(k)) return false;
    told.add(k);
    return true;
  };
  for (const e of relevant) {
    const what = `${(e.involvedObject.kind ?? 'object').toLowerCase()} ${e.involvedObject.name ?? ''}`;
    const msg = (e.message ?? '').trim();
    if (IMAGE_PULL.test(`${e.reason ?? ''} ${msg}`)) {
      if (firstFor(e, 'pull')) once(`${what} cannot pull an image: ${msg}`);
      hints.push(`check the image names (the traffic-agent image is set by ${ENV_AGENT_IMAGE} on the traffic-manager) and that the node can pull them`);
    } else if (e.reason === 'FailedCreate') {
      if (firstFor(e, 'create')) once(`${what} cannot create pods: ${msg}`);
      if (/quota/i.test(msg)) hints.push('the namespace quota has no room for the pods with the agent; raise it or scale the workload down');
      if (/PodSecurity/.test(msg)) hints.push(podSecurityHint(e.involvedObject.namespace ?? '<namespace>'));
    } else if (e.reason === 'FailedScheduling' || e.reason === 'BackOff' || e.reason === 'Failed' || e.reason === 'Unhealthy') {
      if (firstFor(e, e.reason)) once(`${what}: ${e.reason}: ${msg}`);
    }
  }
  for (const pod of input.pods.filter(isLivePod)) {
    const name = pod.metadata?.name ?? '';
    const created = pod.metadata?.creationTimestamp?.getTime() ?? 0;
    if (!podHasAgent(pod)) {
      if (created >= input.since) {
        once(`the agent-injector webhook was not called for pod ${name}: check the MutatingWebhookConfiguration and the injector's logs`);
        hints.push('kubectl get mutatingwebhookconfigurations; kubectl logs -n <manager namespace> deploy/agent-injector');
      }
    } else if (podConfigHash(pod) === input.hash) {
      if (!isReadyPod(pod)) once(`pod ${name} has the agent but is not ready`);
      else if (!input.arrivedPods.has(name)) {
        once(`the traffic-agent of pod ${name} did not arrive at the traffic-manager`);
        hints.push(`see its logs: kubectl logs ${name} -c traffic-agent`);
      }
    }
  }
  if (reasons.length === 0) reasons.push('no pod with the new agent configuration was created');
  return { reasons, hint: hints[0] ?? `see kubectl describe ${workloadRef(input.workload)} and the events of its pods` };
}

/**
 * Runs a prepare, reporting progress lines. `signal` aborts the wait (the caller went away); the
 * ConfigMap is restored then too.
 */
export async function prepareIntercept(deps: PrepareDeps, spec: InterceptSpec, progress: (line: string) => void, signal?: AbortSignal): Promise<PreparedIntercept> {
  const { kube, clock } = deps;
  const workload = await findWorkload(kube, spec);
  const services = await kube.listServices(workload.namespace);
  const built = buildAgentConfig(workload, services, deps.build);
  const target = resolveTarget(built, spec);
  const replace = isReplace(spec);
  // A replace's ports must be the container's: refused now rather than after the restart.
  if (replace) replacePorts(spec, built, target);
  const named = resolvedSpec(spec, built, target);
  let config = built;
  const replaces = deps.replaces;
  const previous = await kube.getAgentConfig(workload.namespace, workload.name);
  if (replaces !== undefined) {
    const refusal = replaces.state.replaceConflict(replaces.sessionId, named, target.container.name);
    if (refusal !== undefined) throw refusal;
    // Containers that replaces hold stay out of the pods, whoever's prepare writes the entry; so do
    // those the entry marks already (a replace that a restarted manager has not been told of
    // again yet): only replace.ts gives a container back.
    const held = replaces.state.replacedContainers(workload.namespace, workload.name);
    config = withReplaced(built, [...held, ...markedIn(workload.name, previous), ...(replace ? [target.container.name] : [])]);
  }
  // Only the init container of numeric target ports can be refused: otherwise no need to ask.
  if (allIntercepts(config).some(({ intercept }) => intercept.targetPortNumeric)) {
    const refused = podSecurityProblem(config, await kube.namespaceLabels(workload.namespace));
    if (refused !== undefined) throw refused;
  }
  const refused = workloadProblem(workload);
  if (refused !== undefined) throw refused;
  const ref = refOf(config);
  const name = workloadRef(workload);
  const hash = agentConfigHash(config);
  const startedAt = clock.now();

  const entry = serializeAgentConfig(config);
  // A new entry means new pods, which only the injector can give the agent: when it cannot be
  // reached, say so now rather than restart the workload into pods without it.
  if (previous !== entry && deps.injector !== undefined) {
    const problem = injectorProblem(await deps.injector.inspect(), workload.namespace);
    if (problem !== undefined) {
      throw new TpError(problem.category, problem.code, `${name} cannot get the traffic-agent: ${problem.reason}`, { hint: problem.hint });
    }
  }
  // Pods made after this moment are made while the entry is there: each must have the agent.
  const podsBefore = previous === entry ? undefined : new Set((await kube.listWorkloadPods(ref)).map((p) => p.metadata?.name ?? ''));
  const writtenAt = clock.now();
  const stopNotices = deps.rollouts?.onNotice((about, line) => {
    if (about.namespace === ref.namespace && about.kind === ref.kind && about.name === ref.name) progress(line);
  });
  // Held from before the write: another client's engagement of the container is refused from now.
  if (replace) replaces?.state.holdReplace(replaces.sessionId, named, target.container.name);
  const wrote = await kube.applyAgentConfig(workload.namespace, workload.name, entry).catch((err: unknown) => {
    stopNotices?.();
    if (replace) replaces?.state.releaseReplace(replaces.sessionId, named.name);
    throw err;
  });
  if (wrote && replace) {
    progress(
      `wrote the traffic-agent configuration of ${name} without its container ${target.container.name}; ` +
        'replacing its pods: every replica loses the container while the replace lasts',
    );
  } else if (wrote) {
    progress(`wrote the traffic-agent configuration of ${name}; replacing its pods`);
  }

  let podName: string;
  try {
    const since = { writtenAt, podsBefore };
    const waited = await waitForAgent(deps, ref, workload.object.spec?.selector?.matchLabels, name, hash, since, progress, signal);
    podName = waited.podName;
    // After a rollout, ours or one another client's prepare began: old pods may still be routed to.
    if ((wrote || waited.sawPodsWithoutAgent) && deps.probeRouting !== undefined) {
      const { serviceName, servicePort } = target.intercept;
      const address = services.find((svc) => svc.metadata?.name === serviceName)?.spec?.clusterIP;
      // A headless Service has no virtual IP to probe: its clients choose pods themselves.
      if (address !== undefined && address !== '' && address !== 'None') {
        const service = { address, port: servicePort, label: `${serviceName}:${servicePort}` };
        await waitForRouting(clock, deps.probeRouting, service, routingProbesInARow(waited.podsWithAgent), progress, signal);
      }
    }
  } catch (err: unknown) {
    // Leave nothing behind: put back what was there (the watcher then rolls the pods back).
    if (wrote) {
      if (previous === undefined) await kube.removeAgentConfig(workload.namespace, workload.name);
      else await kube.applyAgentConfig(workload.namespace, workload.name, previous);
    }
    // After the entry is back: whoever then syncs the replaced containers starts from it.
    if (replace) replaces?.state.releaseReplace(replaces.sessionId, named.name);
    if (err instanceof NotInjected) throw await notInjectedError(deps, workload, err.pods, !wrote ? 'kept' : previous === undefined ? 'removed' : 'restored');
    if (err instanceof TpError && err.code === 'agent-timeout') {
      const [pods, events] = await Promise.all([kube.listWorkloadPods(ref), kube.listEvents(workload.namespace)]);
      const arrivedPods = new Set(deps.state.agents().filter((a) => a.namespace === workload.namespace).map((a) => a.podName));
      const { reasons, hint } = explainTimeout({ workload, pods, events, hash, since: startedAt, arrivedPods });
      throw new TpError('cluster', 'agent-timeout', `${err.message}: ${reasons.join('; ')}`, { hint });
    }
    throw err;
  } finally {
    stopNotices?.();
  }
  return { spec: resolvedSpec(spec, config, target), target: toInterceptTarget(target, config), podName, rolledOut: wrote };
}

/** The containers an entry marks replaced; none when there is no entry or it cannot be read. */
function markedIn(name: string, entry: string | undefined): string[] {
  if (entry === undefined) return [];
  try {
    return replacedContainers(parseAgentConfig(name, entry));
  } catch {
    return [];
  }
}

/**
 * Returns once `inARowNeeded` probes of the Service's virtual IP in a row reached an
 * agent, or after `ROUTING_WAIT_MS` with a progress line that says so: the pods are in place by
 * then, and only kube-proxy's next rewrite of its rules is awaited. An old pod that is still in
 * those rules takes part of the connections until then, and one that has already exited leaves
 * them hanging.
 */
async function waitForRouting(
  clock: Clock,
  probe: RoutingProbe,
  service: { address: string; port: number; label: string },
  inARowNeeded: number,
  progress: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = clock.now() + ROUTING_WAIT_MS;
  let inARow = 0;
  let told = false;
  while (inARow < inARowNeeded) {
    if (signal?.aborted === true) throw new TpError('cluster', 'cancelled', `the prepare was cancelled while waiting for Service ${service.label}`);
    if (clock.now() >= deadline) {
      progress(
        `Service ${service.label} still sends some connections to pods without the agent after ${ROUTING_WAIT_MS / 1000} s ` +
          '(old pods on their way out, or pods of another workload it selects); those requests reach the app',
      );
      return;
    }
    const started = clock.now();
    if (await probe(service.address, service.port)) {
      inARow++;
      continue;
    }
    inARow = 0;
    if (!told) {
      told = true;
      progress(`waiting for Service ${service.label} to send its connections to the pods with the agent`);
    }
    const rest = started + ROUTING_RETRY_MS - clock.now();
    if (rest > 0) await new Promise<void>((resolve) => clock.setTimer(rest, resolve));
  }
}

/** Ends the wait: pods of a restart after the entry was written came without the agent. */
class NotInjected extends Error {
  constructor(readonly pods: readonly string[]) {
    super(`pods created without the traffic-agent: ${pods.join(', ')}`);
  }
}

/** The moment the entry was written, and the pods there just before. */
interface Since {
  readonly writtenAt: number;
  /** Undefined when the entry was already there (this prepare restarts nothing). */
  readonly podsBefore: ReadonlySet<string> | undefined;
}

/**
 * Whether the pod was made after the entry was written: it was not there just before (the pods
 * the watcher evicts are replaced by new ones), or its template carries the `restarted-at` stamp
 * of a rollout at or after the write (the manager's own clock), so pods that a ReplicaSet makes
 * from an older template (a replacement of a crashed pod mid-rollout) do not count.
 */
function madeSince(pod: KubePod, since: Since): boolean {
  if (since.podsBefore !== undefined && !since.podsBefore.has(pod.metadata?.name ?? '')) return true;
  const stamp = pod.metadata?.annotations?.[ANNOTATIONS.restartedAt];
  const at = stamp === undefined ? NaN : Date.parse(stamp);
  return !Number.isNaN(at) && at >= since.writtenAt;
}

/**
 * Resolves with the name of a Ready pod with the hash whose agent has arrived, once no live pod of
 * the workload lacks the agent, and whether it saw any live pod without it on the way. It looks again whenever an agent arrives or leaves and whenever
 * one of the workload's pods changes (a watch on `labels`, its selector), so that the answer
 * follows the pod that turns Ready or the last old pod that goes; a poll covers a watch that is
 * being re-opened.
 */
function waitForAgent(
  deps: PrepareDeps,
  ref: ReturnType<typeof refOf>,
  labels: Readonly<Record<string, string>> | undefined,
  name: string,
  hash: string,
  since: Since,
  progress: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<{ podName: string; podsWithAgent: number; sawPodsWithoutAgent: boolean }> {
  const { kube, clock, state } = deps;
  return new Promise((resolve, reject) => {
    let sawPodsWithoutAgent = false;
    let done = false;
    let checking = false;
    let again = false;
    let lastLine = '';
    let cancelPoll: () => void = () => undefined;
    let podsWithAgent = 0;
    const finish = (err: Error | undefined, pod?: string): void => {
      if (done) return;
      done = true;
      cancelPoll();
      cancelDeadline();
      unsubscribe();
      stopPodWatch();
      signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) reject(err);
      else resolve({ podName: pod ?? '', podsWithAgent, sawPodsWithoutAgent });
    };
    const check = async (): Promise<void> => {
      // One listing at a time; a trigger during one asks for another right after.
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          const pods = (await kube.listWorkloadPods(ref)).filter(isLivePod);
          if (done) return;
          const withAgent = pods.filter((p) => podConfigHash(p) === hash);
          const ready = withAgent.filter(isReadyPod);
          const arrived = new Set(state.agents().filter((a) => a.namespace === ref.namespace && a.name === ref.name).map((a) => a.podName));
          const pod = ready.find((p) => arrived.has(p.metadata?.name ?? ''));
          // A pod still without the agent keeps taking part of the Service's traffic, which would
          // then bypass the intercept: done only once the rollout has replaced every such pod.
          const without = pods.length - withAgent.length;
          if (without > 0) sawPodsWithoutAgent = true;
          // The injector adds the agent when the pod is created, or never: a pod of the restart
          // without it will not get it, and waiting for the timeout would only delay the news.
          // Unless the entry went meanwhile (removed by another client): then it is right.
          const unmutated = pods.filter((p) => !podHasAgent(p) && madeSince(p, since)).map((p) => p.metadata?.name ?? '');
          if (unmutated.length > 0 && (await kube.getAgentConfig(ref.namespace, ref.name)) !== undefined) {
            finish(new NotInjected(unmutated));
            return;
          }
          if (pod !== undefined && without === 0) {
            podsWithAgent = withAgent.length;
            finish(undefined, pod.metadata?.name ?? '');
            return;
          }
          const line =
            `waiting for ${name}: ${withAgent.length} pod(s) with the agent, ${ready.length} ready, ` +
            `${ready.filter((p) => arrived.has(p.metadata?.name ?? '')).length} arrived` +
            (without > 0 ? `, ${without} still without it` : '');
          if (line !== lastLine) {
            lastLine = line;
            progress(line);
          }
        } while (again && !done);
      } catch (err: unknown) {
        finish(err as Error);
      } finally {
        checking = false;
      }
    };
    const poll = (): void => {
      cancelPoll = clock.setTimer(PREPARE_POLL_MS, () => {
        void check().then(() => {
          if (!done) poll();
        });
      });
    };
    const cancelDeadline = clock.setTimer(deps.timeoutMs, () =>
      finish(new TpError('cluster', 'agent-timeout', `timed out after ${Math.round(deps.timeoutMs / 1000)} s waiting for the traffic-agent of ${name}`)),
    );
    const unsubscribe = state.onAgentsChanged(() => void check());
    // A selector that selects nothing lists no pods either: the poll then reports that.
    const stopPodWatch = labels !== undefined && Object.keys(labels).length > 0 ? kube.watchPods(ref.namespace, () => void check(), labels) : () => undefined;
    const onAbort = (): void => finish(new TpError('cluster', 'cancelled', `the prepare of ${name} was cancelled`));
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted === true) onAbort();
    void check();
    poll();
  });
}
