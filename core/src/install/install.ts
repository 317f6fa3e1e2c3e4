/**
 * `install` and `uninstall --everything`: the only client code that writes to the cluster. The
 * traffic-manager does everything else (agent configurations, rollouts).
 */
import { AGENTS_CONFIGMAP, DEFAULT_IMAGE_REGISTRY, IMAGE_NAMES, LABELS, MANAGED_BY_VALUE, MANAGER_NAMESPACE_LABEL, RESOURCE_NAMES } from '../contracts.js';
import { type Clock, type Progress } from '../clock.js';
import { TpError } from '../errors.js';
import { refOf, type KubeApi, type KubeObject } from '../kube/kube-api.js';
import type { V1Container, V1Deployment, V1Pod, V1Secret } from '../kube/kube-types.js';
import type { InjectorTls } from './certs.js';
import {
  baseManifests,
  injectorDeployment,
  injectorTlsSecret,
  managerDeployment,
  webhookConfigName,
  webhookConfiguration,
  type InstallOptions,
} from './manifests.js';

/**
 * The image of each program for a version, in `registry` (default DEFAULT_IMAGE_REGISTRY):
 * `<registry>/<program>:<version>`. The tag is always the CLI's version.
 */
export function defaultImages(version: string, registry: string = DEFAULT_IMAGE_REGISTRY): { manager: string; injector: string; agent: string } {
  const base = registry.replace(/\/+$/, '');
  return {
    manager: `${base}/${IMAGE_NAMES.manager}:${version}`,
    injector: `${base}/${IMAGE_NAMES.injector}:${version}`,
    agent: `${base}/${IMAGE_NAMES.agent}:${version}`,
  };
}

const REGISTRY_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REGISTRY_HOST = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?';
/**
 * An image registry without its trailing slashes: a host (with an optional port) and an optional
 * path of lower-case names. A regular expression both JavaScript and Go (the Helm chart's
 * values.schema.json) read alike.
 */
export const REGISTRY_PATTERN = `^${REGISTRY_HOST}(?:/${REGISTRY_COMPONENT})*$`;

/**
 * Checks a `--registry` value: a host (with an optional port) and an optional path, as in
 * `registry.example.com:5000/team`, with no scheme and no tag. Throws `bad-registry` otherwise.
 */
export function checkRegistry(registry: string): void {
  const valid = new RegExp(REGISTRY_PATTERN);
  // A trailing slash is harmless (defaultImages drops it).
  if (!valid.test(registry.replace(/\/+$/, ''))) {
    const why = /^[a-z]+:\/\//.test(registry)
      ? 'it has a scheme'
      : registry.includes('@') || /:[^/]*$/.test(registry.split('/').slice(1).join('/'))
        ? 'it has a tag or digest'
        : 'it is not a host[:port][/path] of lower-case names';
    throw new TpError('user', 'bad-registry', `--registry ${JSON.stringify(registry)} is not an image registry: ${why}`, {
      hint: 'give the host and path the images were pushed under, as in --registry registry.example.com:5000/team (the tag is always the CLI\'s version)',
    });
  }
}

export interface InstallDeps {
  readonly kube: KubeApi;
  readonly clock: Clock;
  readonly progress: Progress;
  /** Certificate maker (tests pass a canned one: RSA key generation is slow-ish). */
  readonly makeTls?: (service: string, namespace: string) => InjectorTls;
}

export interface InstallRequest extends InstallOptions {
  /** Wait for both Deployments to be available (default true). */
  readonly wait?: boolean;
  /** How long to wait, in ms. */
  readonly timeoutMs?: number;
  /** Validate against the API server without persisting (kubectl's --dry-run=server). */
  readonly dryRun?: boolean;
}

export interface InstallResult {
  readonly namespace: string;
  readonly images: { manager: string; injector: string; agent: string };
  /** `<kind>/<name>` of every object applied, in order. */
  readonly applied: string[];
  /** False when a TLS Secret from an earlier install was kept. */
  readonly newCertificates: boolean;
}

/** Two minutes: a first pull of three small images on a slow link, with margin. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 120_000;
const POLL_MS = 1_000;

function decode(secret: V1Secret, key: string): string | undefined {
  const value = secret.data?.[key];
  return value === undefined || value === '' ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

/** The TLS Secret of an earlier install, so that re-running install keeps the running injector's cert. */
async function existingTls(kube: KubeApi, namespace: string): Promise<InjectorTls | undefined> {
  const secret = await kube.get<V1Secret>({ apiVersion: 'v1', kind: 'Secret', name: RESOURCE_NAMES.injectorTlsSecret, namespace });
  if (secret === undefined) {
    return undefined;
  }
  const caCert = decode(secret, 'ca.crt');
  const cert = decode(secret, 'tls.crt');
  const key = decode(secret, 'tls.key');
  return caCert !== undefined && cert !== undefined && key !== undefined ? { caCert, cert, key } : undefined;
}

/**
 * The certificate maker, loaded on first use: node-forge is a large module graph, and the CLI bundle
 * would otherwise parse it on every command. esbuild gives the dynamic import a chunk of its own.
 */
async function loadMakeInjectorTls(): Promise<(service: string, namespace: string) => InjectorTls> {
  return (await import('./certs.js')).makeInjectorTls;
}

/** Installs (or updates) the traffic-manager and agent-injector; idempotent (server-side apply). */
export async function install(deps: InstallDeps, req: InstallRequest): Promise<InstallResult> {
  const { kube, progress } = deps;
  const applied: string[] = [];
  const apply = async (obj: KubeObject): Promise<void> => {
    await kube.apply(obj, { dryRun: req.dryRun });
    applied.push(`${obj.kind ?? ''}/${obj.metadata?.name ?? ''}`);
  };
  progress(`installing the traffic-manager into namespace ${req.namespace} (context ${kube.target.context})`);
  for (const obj of baseManifests(req)) {
    await apply(obj);
  }
  const kept = req.dryRun === true ? undefined : await existingTls(kube, req.namespace);
  const tls = kept ?? (deps.makeTls ?? (await loadMakeInjectorTls()))(RESOURCE_NAMES.injector, req.namespace);
  await apply(injectorTlsSecret(req, tls));
  await apply(managerDeployment(req));
  await apply(injectorDeployment(req));
  await apply(webhookConfiguration(req, tls.caCert));
  if (req.wait !== false && req.dryRun !== true) {
    await waitForDeployments(deps, req.namespace, [RESOURCE_NAMES.manager, RESOURCE_NAMES.injector], req.timeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS);
  }
  return {
    namespace: req.namespace,
    images: { manager: req.managerImage, injector: req.injectorImage, agent: req.agentImage },
    applied,
    newCertificates: kept === undefined,
  };
}

/** One Deployment's rollout, read from its status. */
export function deploymentReadiness(d: V1Deployment | undefined): { ready: boolean; summary: string } {
  if (d === undefined) {
    return { ready: false, summary: 'not found' };
  }
  const want = d.spec?.replicas ?? 1;
  const status = d.status ?? {};
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  const observed = (status.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  const availableCondition = (status.conditions ?? []).some((c) => c.type === 'Available' && c.status === 'True');
  const ready = observed && availableCondition && updated >= want && available >= want && (status.replicas ?? 0) === want;
  return { ready, summary: `${Math.min(available, updated)} of ${want} ready` };
}

/** What keeps one container of a Deployment's pods from running. */
interface PodProblem {
  readonly pod: string;
  readonly image: string;
  readonly reason: string;
  readonly message: string | undefined;
}

/** Waiting reasons that mean the node cannot get the image: no wait makes them pass. */
const PULL_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);

/** Why a Deployment's pods are not ready, from their container states and scheduling. */
async function podProblems(kube: KubeApi, namespace: string, name: string): Promise<PodProblem[]> {
  const pods = await kube.list<V1Pod>('v1', 'Pod', { namespace, labelSelector: `app.kubernetes.io/name=${name}` });
  const problems: PodProblem[] = [];
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp !== undefined) continue;
    const podName = pod.metadata?.name ?? '';
    const images = new Map([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => [c.name, c.image ?? '']));
    for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const waiting = cs.state?.waiting;
      if (waiting?.reason !== undefined && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') {
        problems.push({ pod: podName, image: cs.image ?? images.get(cs.name) ?? '', reason: waiting.reason, message: waiting.message });
      }
    }
    for (const c of pod.status?.conditions ?? []) {
      if (c.type === 'PodScheduled' && c.status === 'False') {
        problems.push({ pod: podName, image: '', reason: 'not scheduled', message: c.message ?? c.reason });
      }
    }
  }
  return problems;
}

const describeProblem = (p: PodProblem): string => `${p.pod}: ${p.reason}${p.message !== undefined ? `: ${p.message}` : ''}`;

/** The error for images the cluster's nodes cannot pull: which, why, and where images come from. */
function pullFailure(namespace: string, failed: readonly PodProblem[]): TpError {
  const images = [...new Set(failed.map((p) => p.image).filter((i) => i !== ''))];
  return new TpError(
    'config',
    'image-pull-failed',
    `the cluster's nodes cannot pull ${images.length === 1 ? `image ${images[0] ?? ''}` : `images ${images.join(', ')}`}: ${[...new Set(failed.map(describeProblem))].join('; ')}`,
    {
      hint:
        'push the images to a registry the nodes can pull from, tagged with this version, and run ' +
        `\`kubectl telepresence install --registry <host/path>\`; the objects in ${namespace} stay until then, or \`kubectl telepresence uninstall --everything\` removes them`,
    },
  );
}

/** Waits for Deployments to be available, printing a line whenever one's count changes. */
export async function waitForDeployments(deps: InstallDeps, namespace: string, names: readonly string[], timeoutMs: number): Promise<void> {
  const { kube, clock, progress } = deps;
  const deadline = clock.now() + timeoutMs;
  const last = new Map<string, string>();
  for (;;) {
    let allReady = true;
    // The images each Deployment asks for now: pods of an earlier template (an install that
    // named another registry, say) may still fail to pull while they go, and do not count.
    const wanted = new Set<string>();
    for (const name of names) {
      const d = await kube.get<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace });
      // A status read may carry no template (the API server's always does).
      const template = (d?.spec?.template as { spec?: { initContainers?: V1Container[]; containers?: V1Container[] } } | undefined)?.spec;
      for (const c of [...(template?.initContainers ?? []), ...(template?.containers ?? [])]) wanted.add(c.image ?? '');
      const { ready, summary } = deploymentReadiness(d);
      allReady &&= ready;
      const line = `waiting for deployment/${name}: ${summary}`;
      if (last.get(name) !== line) {
        last.set(name, line);
        progress(ready ? `deployment/${name} is available` : line);
      }
    }
    if (allReady) {
      return;
    }
    const problems = (await Promise.all(names.map((n) => podProblems(kube, namespace, n)))).flat();
    // A node that cannot get an image will not get it by waiting: say so at once.
    const pulls = problems.filter((p) => PULL_FAILURES.has(p.reason) && wanted.has(p.image));
    if (pulls.length > 0) throw pullFailure(namespace, pulls);
    if (clock.now() >= deadline) {
      throw new TpError(
        'cluster',
        'install-timeout',
        `the traffic-manager did not become available within ${Math.round(timeoutMs / 1000)}s${problems.length > 0 ? `: ${problems.map(describeProblem).join('; ')}` : ''}`,
        { hint: `check \`kubectl -n ${namespace} get pods\`; images must be loadable by the cluster (--manager-image, --injector-image)` },
      );
    }
    await clock.sleep(POLL_MS);
  }
}

export interface UninstallEverythingDeps extends InstallDeps {
  /**
   * Removes every agent configuration through the manager and returns what it removed; undefined
   * when the manager is not reachable (then the agents' ConfigMaps are deleted directly and the
   * workloads keep their agent until they next roll out).
   */
  readonly removeAllAgents?: (() => Promise<string[]>) | undefined;
}

export interface UninstallEverythingResult {
  readonly agentsRemoved: string[];
  /** `<kind>/<name>` (namespaced: `<kind>/<namespace>/<name>`) of every object deleted. */
  readonly deleted: string[];
}

/** Kinds install creates (and the ConfigMaps the manager creates), namespaced ones first. */
const MANAGED_KINDS: ReadonlyArray<{ apiVersion: string; kind: string }> = [
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
];

/**
 * `uninstall --everything`: rolls every agent out (through the manager, while it still runs),
 * then deletes everything labelled managed-by=telepresence-ts of this installation (label
 * telepresence.io/manager-namespace, so that an installation in another namespace survives), the
 * webhook configuration, the manager namespace and every telepresence-agents ConfigMap.
 */
export async function uninstallEverything(deps: UninstallEverythingDeps, namespace: string, timeoutMs = DEFAULT_INSTALL_TIMEOUT_MS): Promise<UninstallEverythingResult> {
  const { kube, clock, progress } = deps;
  let agentsRemoved: string[] = [];
  if (deps.removeAllAgents !== undefined) {
    agentsRemoved = await deps.removeAllAgents();
    if (agentsRemoved.length > 0) {
      progress(`removed the agents of ${agentsRemoved.join(', ')}; waiting for the workloads to roll out`);
      const deadline = clock.now() + timeoutMs;
      for (;;) {
        const pods = await kube.list<V1Pod>('v1', 'Pod', { labelSelector: `${LABELS.agentInjected}=true` });
        const live = pods.filter((p) => p.metadata?.deletionTimestamp === undefined);
        if (live.length === 0) {
          break;
        }
        if (clock.now() >= deadline) {
          progress(`${live.length} pods still carry an agent; they lose it when their workload next rolls out`);
          break;
        }
        await clock.sleep(POLL_MS);
      }
    }
  }
  const deleted: string[] = [];
  const remove = async (obj: KubeObject): Promise<void> => {
    const ref = refOf(obj);
    if (await kube.delete(ref)) {
      deleted.push(`${ref.kind}/${ref.namespace !== undefined ? `${ref.namespace}/` : ''}${ref.name}`);
    }
  };
  for (const { apiVersion, kind } of MANAGED_KINDS) {
    for (const obj of await kube.list(apiVersion, kind, { labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE},${MANAGER_NAMESPACE_LABEL}=${namespace}` })) {
      await remove(obj);
    }
  }
  await remove({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: webhookConfigName(namespace) } });
  for (const cm of await kube.list('v1', 'ConfigMap', { fieldSelector: `metadata.name=${AGENTS_CONFIGMAP}` })) {
    await remove(cm);
  }
  await remove({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  progress(`deleted ${deleted.length} objects`);
  // A namespace lingers while its pods terminate; an install started before it is gone would be
  // refused, so wait (bounded) until it has really left.
  const deadline = clock.now() + timeoutMs;
  let said = false;
  while ((await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace })) !== undefined) {
    if (clock.now() >= deadline) {
      progress(`namespace ${namespace} is still terminating; it will be gone once its pods have stopped`);
      break;
    }
    if (!said) progress(`waiting for namespace ${namespace} to terminate`);
    said = true;
    await clock.sleep(POLL_MS);
  }
  return { agentsRemoved, deleted };
}
