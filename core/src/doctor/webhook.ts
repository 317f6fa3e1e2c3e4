/**
 * Whether the API server can call the agent-injector, and gets its patch back.
 *
 * The faithful test is a server-side dry-run (dryRun=All: nothing is stored) of a pod the injector
 * would inject, whose returned object must carry the traffic-agent. The injector injects only a
 * pod whose workload (its ReplicaSet's Deployment, its StatefulSet or its bare ReplicaSet) has an
 * entry in the namespace's `telepresence-agents` ConfigMap (cluster/src/injector/admit.ts); that
 * entry is written by the traffic-manager at the first intercept, and nothing else makes a pod
 * injectable. So the dry-run runs when some workload of the namespace has an entry (its pod
 * template, owned as its pods are), and otherwise (a namespace never intercepted) doctor checks
 * what it can without changing the cluster: the webhook registration, its CA bundle (valid, and
 * verifying the certificate the injector serves), and the injector Service's ready endpoints. The
 * finding says which of the two it did.
 */
import { X509Certificate } from 'node:crypto';
import type { V1EndpointSlice, V1MutatingWebhook } from '@kubernetes/client-node';
import { AGENTS_CONFIGMAP, AGENT_CONTAINER_NAME, RESOURCE_NAMES } from '../contracts.js';
import { TpError, toTpError } from '../errors.js';
import { kubectlFor, type KubeApi, type KubeObject } from '../kube/kube-api.js';
import type { V1ConfigMap, V1Deployment, V1MutatingWebhookConfiguration, V1Pod, V1ReplicaSet, V1StatefulSet } from '../kube/kube-types.js';
import type { AccessQuestion, AccessReviewer } from './rbac.js';
import { installCommand } from './installation.js';
import { fail, ok, warn, type Finding } from './finding.js';

/** What the webhook check needs of the cluster. */
export interface WebhookKube extends Pick<KubeApi, 'target' | 'get' | 'list'>, AccessReviewer {
  /** Creates `pod` with dryRun=All and returns the object the API server would have stored. */
  dryRunPod(namespace: string, pod: V1Pod): Promise<V1Pod>;
  /**
   * Opens TLS to `pod:port` through a port-forward, trusting only `caPem` and checking the
   * certificate for `serverName`, as the API server does; throws a TpError saying why it failed.
   */
  verifyServedCertificate(namespace: string, pod: string, port: number, caPem: string, serverName: string): Promise<void>;
}

export interface WebhookCheckOptions {
  readonly managerNamespace: string;
  /** Where the dry-run pod would be created: the namespace the user works in. */
  readonly namespace: string;
  readonly now: Date;
}

const CHECK = 'webhook';

/** The label EndpointSlices carry to name their Service. */
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The certificates of a caBundle (base64 of PEM), or why there are none. */
export function parseCaBundle(caBundle: string | undefined, now: Date): { pem: string; certs: X509Certificate[] } | { problem: string } {
  if (caBundle === undefined || caBundle === '') return { problem: 'has no caBundle' };
  const pem = Buffer.from(caBundle, 'base64').toString('utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return { problem: 'has a caBundle with no PEM certificate in it' };
  const certs: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      certs.push(new X509Certificate(block));
    } catch (err: unknown) {
      return { problem: `has a caBundle certificate that does not parse: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
  const current = certs.filter((c) => new Date(c.validFrom) <= now && now <= new Date(c.validTo));
  if (current.length === 0) {
    return { problem: `has a caBundle whose certificate is not valid now (valid ${certs[0]?.validFrom ?? ''} to ${certs[0]?.validTo ?? ''})` };
  }
  return { pem, certs: current };
}

/** A ready endpoint of the injector Service: the pod behind it and the port the Service sends to. */
interface ReadyEndpoint {
  readonly pod: string | undefined;
  readonly port: number;
}

function readyEndpoints(slices: readonly V1EndpointSlice[], portName: string): ReadyEndpoint[] {
  const out: ReadyEndpoint[] = [];
  for (const slice of slices) {
    const port = (slice.ports ?? []).find((p) => p.name === portName) ?? slice.ports?.[0];
    // A Service without endpoints has a slice whose `endpoints` is null, whatever the type says.
    for (const e of (slice.endpoints as V1EndpointSlice['endpoints'] | null) ?? []) {
      // Per the EndpointSlice API, an absent `ready` means ready.
      if (e.conditions?.ready === false) continue;
      out.push({ pod: e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined, port: port?.port ?? 0 });
    }
  }
  return out;
}

/** A workload of the namespace with an agent configuration, and a pod it would make. */
interface InjectablePod {
  readonly workload: string;
  readonly pod: V1Pod;
}

function podFromTemplate(
  template: { metadata?: V1Pod['metadata']; spec?: V1Pod['spec'] } | undefined,
  namespace: string,
  owner: { apiVersion: string; kind: string; name: string; uid: string },
  workload: string,
): V1Pod | undefined {
  if (template?.spec === undefined) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      // generateName, as the workload's controller names its pods: no clash with a real pod.
      generateName: `${workload.slice(0, 40)}-tp-doctor-`,
      namespace,
      labels: template.metadata?.labels,
      annotations: template.metadata?.annotations,
      ownerReferences: [{ ...owner, controller: true }],
    },
    spec: template.spec,
  };
}

/**
 * A pod the injector would inject: one of a workload whose agent configuration is in the
 * namespace's ConfigMap, owned as the workload's own pods are (a Deployment's through its newest
 * ReplicaSet). undefined when no such workload exists.
 */
async function injectablePod(kube: WebhookKube, namespace: string): Promise<InjectablePod | undefined> {
  const cm = await kube.get<V1ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: AGENTS_CONFIGMAP, namespace });
  for (const [name, entry] of Object.entries(cm?.data ?? {})) {
    let kind: unknown;
    try {
      kind = (JSON.parse(entry) as { workloadKind?: unknown }).workloadKind;
    } catch {
      continue;
    }
    if (kind === 'Deployment') {
      const d = await kube.get<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace });
      if (d === undefined) continue;
      const owned = (await kube.list<V1ReplicaSet>('apps/v1', 'ReplicaSet', { namespace })).filter((rs) =>
        (rs.metadata?.ownerReferences ?? []).some((o) => o.kind === 'Deployment' && o.name === name && o.controller === true),
      );
      const revision = (rs: V1ReplicaSet): number => Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
      const newest = owned.sort((a, b) => revision(b) - revision(a))[0];
      if (newest === undefined) continue;
      const pod = podFromTemplate(newest.spec?.template, namespace, { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: newest.metadata?.name ?? '', uid: newest.metadata?.uid ?? '' }, name);
      if (pod !== undefined) return { workload: `deployment/${name}`, pod };
    } else if (kind === 'StatefulSet' || kind === 'ReplicaSet') {
      const w = await kube.get<V1StatefulSet | V1ReplicaSet>({ apiVersion: 'apps/v1', kind, name, namespace });
      if (w === undefined) continue;
      const pod = podFromTemplate(w.spec?.template, namespace, { apiVersion: 'apps/v1', kind, name, uid: w.metadata?.uid ?? '' }, name);
      if (pod !== undefined) return { workload: `${kind.toLowerCase()}/${name}`, pod };
    }
  }
  return undefined;
}

/** The registration, CA bundle, served certificate and endpoints; a failed finding, or what was verified. */
async function checkRegistration(kube: WebhookKube, o: WebhookCheckOptions): Promise<Finding | string[]> {
  const configName = `${RESOURCE_NAMES.webhookConfigPrefix}${o.managerNamespace}`;
  const install = installCommand(o.managerNamespace);
  const config = await kube.get<V1MutatingWebhookConfiguration>({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: configName });
  if (config === undefined) {
    return fail(CHECK, 'cluster', `MutatingWebhookConfiguration ${configName} is missing: the API server never calls the agent-injector, so no pod gets an agent`, install);
  }
  const hook: V1MutatingWebhook | undefined = config.webhooks?.[0];
  const service = hook?.clientConfig.service;
  if (hook === undefined || service === undefined) {
    return fail(CHECK, 'cluster', `MutatingWebhookConfiguration ${configName} does not point at the agent-injector Service`, install);
  }
  const excluded = (hook.namespaceSelector?.matchExpressions ?? []).some((e) => e.operator === 'NotIn' && (e.values ?? []).includes(o.namespace));
  if (excluded) {
    return fail(CHECK, 'cluster', `the webhook skips namespace ${o.namespace} (its namespaceSelector excludes it): workloads there cannot be intercepted`, `work in another namespace (--namespace)`);
  }
  const ca = parseCaBundle(hook.clientConfig.caBundle, o.now);
  if ('problem' in ca) return fail(CHECK, 'cluster', `MutatingWebhookConfiguration ${configName} ${ca.problem}`, install);
  const verified = [`registered (${configName})`, `CA bundle valid until ${ca.certs[0]?.validTo ?? ''}`];

  const svcNs = service.namespace;
  let slices: V1EndpointSlice[] | undefined;
  try {
    slices = await kube.list<V1EndpointSlice & KubeObject>('discovery.k8s.io/v1', 'EndpointSlice', { namespace: svcNs, labelSelector: `${SERVICE_NAME_LABEL}=${service.name}` });
  } catch (err: unknown) {
    if (!(err instanceof TpError) || err.code !== 'kube-forbidden') throw err;
    verified.push(`not its endpoints (you may not list endpointslices in ${svcNs})`);
  }
  if (slices !== undefined) {
    const ready = readyEndpoints(slices, RESOURCE_NAMES.injectorPortName);
    if (ready.length === 0) {
      return fail(
        CHECK,
        'cluster',
        `Service ${svcNs}/${service.name} has no ready endpoint: the API server cannot call the agent-injector and, as its failurePolicy is Ignore, creates pods without agents`,
        `${kubectlFor(kube.target)} -n ${svcNs} describe deployment/${service.name}`,
      );
    }
    verified.push(`${ready.length} ready endpoint${ready.length === 1 ? '' : 's'}`);
    const first = ready.find((e) => e.pod !== undefined && e.port > 0);
    if (first?.pod !== undefined) {
      const serverName = `${service.name}.${svcNs}.svc`;
      try {
        await kube.verifyServedCertificate(svcNs, first.pod, first.port, ca.pem, serverName);
        verified.push(`its certificate verified by the CA bundle for ${serverName}`);
      } catch (err: unknown) {
        const e = toTpError(err);
        if (e.code === 'kube-forbidden') verified.push(`not its certificate (you may not port-forward in ${svcNs})`);
        else return fail(CHECK, 'cluster', `the API server would refuse the agent-injector's certificate: ${e.message}`, install);
      }
    }
  }
  return verified;
}

/** The webhook finding: a dry-run where one is possible, the registration and endpoints always. */
export async function checkWebhook(kube: WebhookKube, o: WebhookCheckOptions): Promise<Finding> {
  const registration = await checkRegistration(kube, o);
  if (!Array.isArray(registration)) return registration;
  const checked = registration.join(', ');

  const candidate = await injectablePod(kube, o.namespace);
  if (candidate === undefined) {
    return ok(
      CHECK,
      'cluster',
      `${checked}; not dry-run: no workload in namespace ${o.namespace} has an agent configuration yet, and the injector admits any other pod unchanged, so there is no pod to try without changing the cluster`,
    );
  }
  const question: AccessQuestion = { verb: 'create', resource: 'pods', namespace: o.namespace };
  const access = await kube.canI(question);
  if (!access.allowed) {
    return ok(CHECK, 'cluster', `${checked}; not dry-run: you may not create pods in ${o.namespace}, which a dry-run of a ${candidate.workload} pod needs`);
  }
  let created: V1Pod;
  try {
    created = await kube.dryRunPod(o.namespace, candidate.pod);
  } catch (err: unknown) {
    const e = toTpError(err);
    return warn(CHECK, 'cluster', `${checked}; but the API server refused a dry-run pod of ${candidate.workload}: ${e.message}`, e.hint ?? '');
  }
  const injected = (created.spec?.containers ?? []).some((c) => c.name === AGENT_CONTAINER_NAME);
  if (!injected) {
    return fail(
      CHECK,
      'cluster',
      `a dry-run pod of ${candidate.workload} came back without the ${AGENT_CONTAINER_NAME}: the API server did not apply the agent-injector's patch (its failurePolicy Ignore hides why)`,
      `${kubectlFor(kube.target)} -n ${o.managerNamespace} logs deployment/${RESOURCE_NAMES.injector}`,
    );
  }
  return ok(CHECK, 'cluster', `the API server called the agent-injector: a dry-run pod of ${candidate.workload} came back with the ${AGENT_CONTAINER_NAME} (${checked})`);
}
