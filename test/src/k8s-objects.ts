/**
 * The few fields of Kubernetes objects the e2e suites read from `kubectl -o json`, and pure
 * predicates over them. Deliberately partial: no client library is needed for a smoke test.
 */

export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason?: string;
  readonly message?: string;
}

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly deletionTimestamp?: string;
}

export interface List<T> {
  readonly items: readonly T[];
}

export interface Node {
  readonly metadata: ObjectMeta;
  readonly status?: { readonly conditions?: readonly Condition[] };
}

export interface Pod {
  readonly metadata: ObjectMeta;
  readonly spec?: {
    readonly nodeName?: string;
    readonly containers?: ReadonlyArray<{ readonly name: string; readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }> }>;
  };
  readonly status?: {
    readonly phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    readonly podIP?: string;
    readonly conditions?: readonly Condition[];
    readonly containerStatuses?: ReadonlyArray<{ readonly name: string; readonly image: string; readonly imageID: string }>;
  };
}

export interface Deployment {
  readonly metadata: ObjectMeta;
  readonly spec?: {
    readonly replicas?: number;
    readonly template?: { readonly metadata?: { readonly annotations?: Readonly<Record<string, string>> } };
  };
  readonly status?: {
    readonly replicas?: number;
    readonly readyReplicas?: number;
    readonly availableReplicas?: number;
    readonly conditions?: readonly Condition[];
  };
}

export interface Service {
  readonly metadata: ObjectMeta;
  readonly spec?: { readonly clusterIP?: string; readonly type?: string };
}

export interface EndpointSlice {
  readonly metadata: ObjectMeta;
  readonly endpoints?: ReadonlyArray<{
    readonly addresses: readonly string[];
    readonly conditions?: { readonly ready?: boolean };
  }>;
}

/** The condition of `type`, if the object reports it. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isNodeReady(node: Node): boolean {
  return findCondition(node.status?.conditions, 'Ready')?.status === 'True';
}

/** Running, Ready, and not on its way out. */
export function isPodReady(pod: Pod): boolean {
  return (
    pod.metadata.deletionTimestamp === undefined &&
    pod.status?.phase === 'Running' &&
    findCondition(pod.status.conditions, 'Ready')?.status === 'True'
  );
}

/** The addresses of an EndpointSlice list's endpoints that are ready to serve. */
export function readyEndpointAddresses(slices: readonly EndpointSlice[]): string[] {
  return slices.flatMap((s) =>
    (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses),
  );
}

/** One line per condition, for failure messages: `Ready=False (KubeletNotReady: ...)`. */
export function formatConditions(conditions: readonly Condition[] | undefined): string {
  if (!conditions || conditions.length === 0) return '(no conditions)';
  return conditions
    .map((c) => `${c.type}=${c.status}${c.reason || c.message ? ` (${[c.reason, c.message].filter(Boolean).join(': ')})` : ''}`)
    .join(', ');
}
