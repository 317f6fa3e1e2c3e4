/**
 * The Kubernetes port of core: everything the client does with the API server goes through
 * `KubeApi`, so that install, uninstall and the daemon can be tested with hand-written fakes. The
 * adapter (client-node-kube-api.ts) is the only file of core that imports @kubernetes/client-node
 * at run time; kube-types.ts re-exports its model types for typed manifests.
 */
import type { Duplex } from 'node:stream';
import type { TpError } from '../errors.js';

/** The kubectl flags that choose a cluster; undefined means kubectl's default. */
export interface KubeFlags {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
  readonly namespace?: string | undefined;
  /** The caller's $KUBECONFIG (a path list); used when `kubeconfig` is not given. */
  readonly kubeconfigEnv?: string | undefined;
}

/** What the flags resolved to. */
export interface KubeTarget {
  readonly context: string;
  readonly namespace: string;
  /** The API server's URL, for status lines. */
  readonly server: string;
  /** The --kubeconfig file given, if one was: hints that name kubectl commands repeat it. */
  readonly kubeconfig?: string | undefined;
}

/** `kubectl` with the flags that reach the same cluster, for hints the user may paste. */
export function kubectlFor(target: KubeTarget): string {
  const kubeconfig = target.kubeconfig !== undefined ? ` --kubeconfig ${/^[\w./~-]+$/.test(target.kubeconfig) ? target.kubeconfig : JSON.stringify(target.kubeconfig)}` : '';
  return `kubectl${kubeconfig} --context ${target.context}`;
}

/** The fields of a Kubernetes object that core reads generically. */
export interface ObjectMeta {
  name?: string | undefined;
  namespace?: string | undefined;
  uid?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  ownerReferences?: ReadonlyArray<{ kind: string; name: string; controller?: boolean | undefined }> | undefined;
  deletionTimestamp?: unknown;
  generation?: number | undefined;
}

/** Any Kubernetes object: client-node's typed models fit this shape. */
export interface KubeObject {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  metadata?: ObjectMeta | undefined;
}

/** Names one object. `namespace` is absent for cluster-scoped kinds. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string | undefined;
}

export interface ListOptions {
  /** Absent: every namespace (or a cluster-scoped kind). */
  readonly namespace?: string | undefined;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
}

/** A local TCP port forwarded to a pod's port; one forward stream per accepted connection. */
export interface PortForward {
  readonly localPort: number;
  close(): Promise<void>;
}

/** Called with a failed forward stream (for the daemon log). */
export type ForwardErrorListener = (err: TpError) => void;

export interface KubeApi {
  readonly target: KubeTarget;
  /** undefined when the object does not exist. */
  get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined>;
  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options?: ListOptions): Promise<T[]>;
  /** Server-side apply (field manager `telepresence-ts`, conflicts forced): create or update. */
  apply(obj: KubeObject, options?: { dryRun?: boolean }): Promise<void>;
  /** false when the object was already gone. */
  delete(ref: ObjectRef): Promise<boolean>;
  portForward(namespace: string, pod: string, port: number, onError?: ForwardErrorListener): Promise<PortForward>;
  /** One port-forward stream to the pod's port, open when this resolves (core/src/kube/pod-stream.ts). */
  openPodStream(namespace: string, pod: string, port: number): Promise<Duplex>;
}

/** Builds a KubeApi for a set of flags (the daemon reconnects with new flags). */
export type KubeApiFactory = (flags: KubeFlags) => Promise<KubeApi>;

/** A ref for an object that has apiVersion, kind and a name. */
export function refOf(obj: KubeObject): ObjectRef {
  return {
    apiVersion: obj.apiVersion ?? '',
    kind: obj.kind ?? '',
    name: obj.metadata?.name ?? '',
    namespace: obj.metadata?.namespace,
  };
}
