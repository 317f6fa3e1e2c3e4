/**
 * What the traffic-manager can see of the agent-injector, so that a prepare says why pods come
 * without the traffic-agent instead of waiting for its timeout (ADR 0002, prepare step 4): the
 * MutatingWebhookConfiguration that makes the API server call the injector, the ready endpoints
 * of the injector's Service that those calls go to, and the injector's Deployment, which says
 * why there are none. The webhook has `failurePolicy: Ignore`, so a missing or unreachable
 * injector never stops a pod: the pod is created without the agent, and nothing in the pod or in
 * its events says so.
 *
 * `injectorProblem` decides (pure); `ClientNodeInjectorHealth` reads, and is with kube.ts the
 * only file of the manager that imports @kubernetes/client-node at run time. A read that fails
 * (RBAC of an older install, the API server) is `unknown`, never a problem by itself.
 */
import { AdmissionregistrationV1Api, AppsV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import { RESOURCE_NAMES } from '@telepresence-ts/core/contracts';

/** The part of the webhook configuration that decides whether a pod of a namespace reaches the injector. */
export interface WebhookView {
  readonly failurePolicy: string;
  /** Namespaces the namespaceSelector leaves out by name (`kubernetes.io/metadata.name NotIn`). */
  readonly excludedNamespaces: readonly string[];
}

export interface InjectorDeploymentView {
  readonly replicas: number;
  readonly readyReplicas: number;
  /** Conditions that are not True, as `Type: message`: why the pods are not ready. */
  readonly troubles: readonly string[];
}

/** What was seen of the injector; `unknown` where the read failed. */
export interface InjectorView {
  /** The namespace the injector is installed in (the manager's). */
  readonly namespace: string;
  readonly webhook: WebhookView | 'missing' | 'unknown';
  readonly readyEndpoints: number | 'unknown';
  readonly deployment: InjectorDeploymentView | 'missing' | 'unknown';
}

/** Reads what `InjectorView` holds. Never rejects. */
export interface InjectorHealthApi {
  inspect(): Promise<InjectorView>;
}

/** Why the injector cannot give new pods the agent, as error parts; see `injectorProblem`. */
export interface InjectorProblem {
  readonly category: 'config' | 'cluster';
  readonly code: 'injector-not-installed' | 'injector-unavailable' | 'namespace-not-injected';
  readonly reason: string;
  readonly hint: string;
}

/** The MutatingWebhookConfiguration `install` writes for a manager in `namespace`. */
export function webhookConfigurationName(namespace: string): string {
  return `${RESOURCE_NAMES.webhookConfigPrefix}${namespace}`;
}

/**
 * Why pods of `workloadNamespace` created now would not get the agent, or undefined when the
 * injector looks able to give it. Pure, for tests.
 */
export function injectorProblem(view: InjectorView, workloadNamespace: string): InjectorProblem | undefined {
  const ns = view.namespace;
  const injector = RESOURCE_NAMES.injector;
  if (view.webhook === 'missing') {
    return {
      category: 'config',
      code: 'injector-not-installed',
      reason: `the MutatingWebhookConfiguration ${webhookConfigurationName(ns)} is missing, so the API server never calls the ${injector}`,
      hint: 'run `kubectl telepresence install` again: it writes the webhook configuration back',
    };
  }
  if (view.webhook !== 'unknown' && view.webhook.excludedNamespaces.includes(workloadNamespace)) {
    return {
      category: 'config',
      code: 'namespace-not-injected',
      reason: `the ${injector} webhook leaves namespace ${workloadNamespace} out (its namespaceSelector), so pods there never get the agent`,
      hint: `intercept workloads outside ${view.webhook.excludedNamespaces.join(' and ')}`,
    };
  }
  if (view.readyEndpoints !== 0) return undefined;
  const d = view.deployment;
  const failOpen = view.webhook === 'unknown' ? '' : `; with failurePolicy ${view.webhook.failurePolicy} the API server then creates pods without the agent`;
  const base = `the ${injector} Service in ${ns} has no ready endpoint${failOpen}`;
  if (d === 'missing') {
    return { category: 'config', code: 'injector-not-installed', reason: `${base}: deployment/${injector} is missing`, hint: 'run `kubectl telepresence install` again' };
  }
  if (d !== 'unknown' && d.replicas === 0) {
    return {
      category: 'cluster',
      code: 'injector-unavailable',
      reason: `${base}: deployment/${injector} is scaled to 0 replicas`,
      hint: `kubectl -n ${ns} scale deployment/${injector} --replicas=1 (then kubectl -n ${ns} rollout status deployment/${injector}), or run \`kubectl telepresence install\` again`,
    };
  }
  const why = d === 'unknown' ? '' : `: ${d.readyReplicas} of ${d.replicas} pod(s) of deployment/${injector} ready${d.troubles.length > 0 ? ` (${d.troubles.join('; ')})` : ''}`;
  return {
    category: 'cluster',
    code: 'injector-unavailable',
    reason: `${base}${why}`,
    hint: `wait for it: kubectl -n ${ns} rollout status deployment/${injector}; see why it is not ready: kubectl -n ${ns} describe pods -l app.kubernetes.io/name=${injector}`,
  };
}

/**
 * The ready endpoints of a Service's EndpointSlices. An endpoint whose `ready` is unset counts as
 * ready (the API's own rule); a slice of a Service with no pod has no `endpoints` at all, whatever
 * its type says. Pure, for tests.
 */
export function readyEndpointCount(slices: readonly V1EndpointSlice[]): number {
  return slices.flatMap((s) => (s.endpoints as V1EndpointSlice['endpoints'] | undefined) ?? []).filter((e) => e.conditions?.ready !== false).length;
}

/** Reads the injector's state with client-node; `namespace` is the manager's (and injector's). */
export class ClientNodeInjectorHealth implements InjectorHealthApi {
  readonly #admission: AdmissionregistrationV1Api;
  readonly #discovery: DiscoveryV1Api;
  readonly #apps: AppsV1Api;
  readonly #namespace: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.#admission = kc.makeApiClient(AdmissionregistrationV1Api);
    this.#discovery = kc.makeApiClient(DiscoveryV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
    this.#namespace = namespace;
  }

  /** KUBECONFIG when there is one (a local run); otherwise, in a pod, the service account. */
  static fromEnvironment(namespace: string): ClientNodeInjectorHealth {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return new ClientNodeInjectorHealth(kc, namespace);
  }

  async inspect(): Promise<InjectorView> {
    const [webhook, readyEndpoints, deployment] = await Promise.all([this.#webhook(), this.#readyEndpoints(), this.#deployment()]);
    return { namespace: this.#namespace, webhook, readyEndpoints, deployment };
  }

  async #webhook(): Promise<InjectorView['webhook']> {
    try {
      const config = await this.#admission.readMutatingWebhookConfiguration({ name: webhookConfigurationName(this.#namespace) });
      // install writes one webhook; one that points elsewhere is not ours.
      const hook = (config.webhooks ?? []).find((w) => w.clientConfig.service?.name === RESOURCE_NAMES.injector && w.clientConfig.service.namespace === this.#namespace);
      if (hook === undefined) return 'missing';
      const excludedNamespaces = (hook.namespaceSelector?.matchExpressions ?? [])
        .filter((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn')
        .flatMap((e) => e.values ?? []);
      return { failurePolicy: hook.failurePolicy ?? 'Fail', excludedNamespaces };
    } catch (err: unknown) {
      return httpCode(err) === 404 ? 'missing' : 'unknown';
    }
  }

  async #readyEndpoints(): Promise<number | 'unknown'> {
    try {
      const slices = await this.#discovery.listNamespacedEndpointSlice({ namespace: this.#namespace, labelSelector: `kubernetes.io/service-name=${RESOURCE_NAMES.injector}` });
      return readyEndpointCount(slices.items);
    } catch {
      return 'unknown';
    }
  }

  async #deployment(): Promise<InjectorView['deployment']> {
    try {
      const d = await this.#apps.readNamespacedDeployment({ namespace: this.#namespace, name: RESOURCE_NAMES.injector });
      const troubles = (d.status?.conditions ?? []).filter((c) => c.status !== 'True').map((c) => `${c.type}: ${c.message ?? c.reason ?? c.status}`);
      return { replicas: d.spec?.replicas ?? 1, readyReplicas: d.status?.readyReplicas ?? 0, troubles };
    } catch (err: unknown) {
      return httpCode(err) === 404 ? 'missing' : 'unknown';
    }
  }
}

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
