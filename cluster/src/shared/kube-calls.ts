/**
 * The Kubernetes calls that the traffic-manager and the agent-injector both make over
 * @kubernetes/client-node: reading a workload, listing a namespace's Services, and the
 * read-modify-write of a namespace's `telepresence-agents` ConfigMap. Each program's kube adapter
 * (manager/kube.ts, injector/kube.ts) calls these with its own clients and its own name, which a
 * refusal (403) names, so that the hint points at the right ClusterRole.
 */
import type { AppsV1Api, CoreV1Api, V1ConfigMap, V1Deployment, V1ReplicaSet, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import type { WorkloadKind } from '@telepresence-ts/core/agent-config';
import { AGENTS_CONFIGMAP, LABELS, MANAGED_BY_VALUE } from '@telepresence-ts/core/contracts';
import { TpError, isTpError } from '@telepresence-ts/core/errors';

/** A workload found by name, with its kind (the API objects do not always carry `kind`). */
export interface KubeWorkload {
  readonly kind: WorkloadKind;
  readonly name: string;
  readonly namespace: string;
  readonly object: V1Deployment | V1ReplicaSet | V1StatefulSet;
}

/** Turns a client-node failure of `what` (e.g. `read web in apps`) into a TpError. */
export type KubeErrorOf = (err: unknown, what: string) => TpError;

/** How many times a ConfigMap write is retried after a conflict (someone else wrote in between). */
export const CONFLICT_RETRIES = 5;

/** The HTTP status of a client-node ApiException; undefined for other failures (no connection). */
export function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * The API server's own words: client-node's ApiException message is "HTTP-Code: 403\nMessage:
 * ...\nBody: ...", with the Kubernetes Status (whose `message` says what was refused) as body.
 */
export function errorDetail(err: unknown): string {
  const body: unknown = (err as { body?: unknown } | null)?.body;
  let status: unknown = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      status = undefined;
    }
  }
  const fromStatus = (status as { message?: unknown } | undefined)?.message;
  if (typeof fromStatus === 'string' && fromStatus !== '') return fromStatus;
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n').find((l) => l.startsWith('Message: '));
  return (line?.slice('Message: '.length) ?? text.split('\n')[0] ?? text).trim();
}

/**
 * The error mapping of the program `program` (`traffic-manager`, `agent-injector`): a 403 is a
 * `config` error naming the program whose RBAC lacks the right; anything else a `cluster` error.
 * A TpError passes through.
 */
export function kubeErrorFor(program: string): KubeErrorOf {
  return (err, what) => {
    if (isTpError(err)) return err;
    const code = httpCode(err);
    const detail = errorDetail(err);
    if (code === 403) {
      return new TpError('config', 'forbidden', `the ${program} may not ${what}: ${detail}`, {
        hint: `check the ${program}'s RBAC (re-run \`kubectl telepresence install\`)`,
        cause: err,
      });
    }
    return new TpError('cluster', 'kube-api', `could not ${what}: ${detail}`, { cause: err });
  };
}

/** The workload of that kind and name; undefined when there is none (404). */
export async function readWorkload(apps: AppsV1Api, fail: KubeErrorOf, namespace: string, name: string, kind: WorkloadKind): Promise<KubeWorkload | undefined> {
  const readers: Record<WorkloadKind, () => Promise<V1Deployment | V1ReplicaSet | V1StatefulSet>> = {
    Deployment: () => apps.readNamespacedDeployment({ namespace, name }),
    ReplicaSet: () => apps.readNamespacedReplicaSet({ namespace, name }),
    StatefulSet: () => apps.readNamespacedStatefulSet({ namespace, name }),
  };
  try {
    return { kind, name, namespace, object: await readers[kind]() };
  } catch (err: unknown) {
    if (httpCode(err) === 404) return undefined;
    throw fail(err, `read ${kind.toLowerCase()}/${name} in ${namespace}`);
  }
}

/** Every Service of the namespace (the agent configuration is built from those selecting a workload). */
export async function listServices(core: CoreV1Api, fail: KubeErrorOf, namespace: string): Promise<V1Service[]> {
  try {
    return (await core.listNamespacedService({ namespace })).items;
  } catch (err: unknown) {
    throw fail(err, `list the Services of ${namespace}`);
  }
}

/** The namespace's `telepresence-agents` ConfigMap; undefined when it has none. */
export async function readAgentsMap(core: CoreV1Api, fail: KubeErrorOf, namespace: string): Promise<V1ConfigMap | undefined> {
  try {
    return await core.readNamespacedConfigMap({ namespace, name: AGENTS_CONFIGMAP });
  } catch (err: unknown) {
    if (httpCode(err) === 404) return undefined;
    throw fail(err, `read ${namespace}/${AGENTS_CONFIGMAP}`);
  }
}

/** What `updateAgentsMap` did, and the map's entries afterwards (as read, when nothing was written). */
export interface AgentsMapUpdate {
  readonly changed: boolean;
  readonly data: Readonly<Record<string, string>>;
}

/**
 * Read-modify-write of the namespace's agents ConfigMap with its resourceVersion: `change` edits a
 * copy of the entries and says whether to write them. A concurrent writer makes the write fail
 * with 409 and we read again (and call `change` again), so no entry written by someone else is
 * lost. A missing map is created, labelled as ours.
 */
export async function updateAgentsMap(
  core: CoreV1Api,
  fail: KubeErrorOf,
  namespace: string,
  change: (data: Record<string, string>) => boolean,
): Promise<AgentsMapUpdate> {
  for (let attempt = 0; ; attempt++) {
    const cm = await readAgentsMap(core, fail, namespace);
    const data = { ...(cm?.data ?? {}) };
    if (!change(data)) return { changed: false, data };
    try {
      if (cm === undefined) {
        await core.createNamespacedConfigMap({
          namespace,
          body: { metadata: { name: AGENTS_CONFIGMAP, namespace, labels: { [LABELS.managedBy]: MANAGED_BY_VALUE } }, data },
        });
      } else {
        await core.replaceNamespacedConfigMap({ namespace, name: AGENTS_CONFIGMAP, body: { ...cm, data } });
      }
      return { changed: true, data };
    } catch (err: unknown) {
      // 409 also answers a create that lost a race with another creator: read again, then replace.
      if (httpCode(err) === 409 && attempt < CONFLICT_RETRIES) continue;
      throw fail(err, `write ${namespace}/${AGENTS_CONFIGMAP}`);
    }
  }
}
