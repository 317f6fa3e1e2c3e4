/**
 * The ports of a workload that can be intercepted, as the tree shows them (service:port ->
 * container:port). Pure. It follows the traffic-manager's rules for connecting a Service port to a
 * container (targetPort by name: the container port of that name; by number: the container that
 * declares it, else the first container); the manager still decides when the intercept is made.
 */
import type { KubeObject } from '@telepresence-ts/core';

/** The fields of a workload the tree reads (Deployment, ReplicaSet and StatefulSet share them). */
export interface WorkloadObject extends KubeObject {
  spec?: {
    replicas?: number | undefined;
    template?: {
      metadata?: { labels?: Record<string, string> | undefined } | undefined;
      spec?: { containers?: readonly ContainerObject[] | undefined } | undefined;
    } | undefined;
  } | undefined;
  status?: { readyReplicas?: number | undefined; replicas?: number | undefined } | undefined;
}

export interface ContainerObject {
  name: string;
  ports?: ReadonlyArray<{ name?: string | undefined; containerPort: number; protocol?: string | undefined }> | undefined;
  env?: ReadonlyArray<{ name: string; value?: string | undefined; valueFrom?: unknown }> | undefined;
}

export interface ServiceObject extends KubeObject {
  spec?: {
    selector?: Record<string, string> | undefined;
    ports?: ReadonlyArray<{ name?: string | undefined; port: number; targetPort?: number | string | undefined; protocol?: string | undefined }> | undefined;
  } | undefined;
}

/** One service port and the container port it reaches. */
export interface InterceptablePort {
  readonly serviceName: string;
  /** The service port's name, '' when it has none. */
  readonly servicePortName: string;
  readonly servicePort: number;
  readonly containerName: string;
  readonly containerPort: number;
}

/** How an intercept request names the port: its name when it has one, else its number. */
export function portId(p: InterceptablePort): string {
  return p.servicePortName !== '' ? p.servicePortName : String(p.servicePort);
}

/** `web:80 (http) → app:8080` */
export function portLabel(p: InterceptablePort): string {
  const name = p.servicePortName !== '' ? ` (${p.servicePortName})` : '';
  return `${p.serviceName}:${p.servicePort}${name} → ${p.containerName}:${p.containerPort}`;
}

function selects(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** Every TCP service port of the Services selecting the workload's pods that reaches a container. */
export function interceptablePorts(workload: WorkloadObject, services: readonly ServiceObject[]): InterceptablePort[] {
  const labels = workload.spec?.template?.metadata?.labels ?? {};
  const containers = workload.spec?.template?.spec?.containers ?? [];
  const result: InterceptablePort[] = [];
  const matching = services.filter((s) => selects(s.spec?.selector, labels)).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const svc of matching) {
    for (const port of svc.spec?.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const target = port.targetPort ?? port.port;
      let reached: { containerName: string; containerPort: number } | undefined;
      if (typeof target === 'number' || /^\d+$/.test(target)) {
        const n = Number(target);
        const c = containers.find((cc) => (cc.ports ?? []).some((cp) => cp.containerPort === n)) ?? containers[0];
        if (c !== undefined) reached = { containerName: c.name, containerPort: n };
      } else {
        for (const c of containers) {
          const cp = (c.ports ?? []).find((p) => p.name === target);
          if (cp !== undefined) {
            reached = { containerName: c.name, containerPort: cp.containerPort };
            break;
          }
        }
      }
      if (reached === undefined) continue;
      result.push({ serviceName: svc.metadata?.name ?? '', servicePortName: port.name ?? '', servicePort: port.port, ...reached });
    }
  }
  return result;
}
