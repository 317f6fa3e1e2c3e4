/** Pods and agent configurations shared by the injector's tests. */
import type { V1Container, V1Pod, V1Service } from '@kubernetes/client-node';
import { AGENT_CONFIG_VERSION, type AgentConfig, type AgentIntercept } from '@telepresence-ts/core/agent-config';
import type { KubeWorkload } from '../../src/shared/kube-calls.js';

/** One intercept; symbolic (`targetPort: <name>`) unless `numeric`. */
export function intercept(
  containerPortName: string,
  containerPort: number,
  agentPort: number,
  opts: { numeric?: boolean; service?: string } = {},
): AgentIntercept {
  const service = opts.service ?? 'web';
  return {
    serviceName: service,
    serviceUid: `uid-${service}`,
    servicePortName: containerPortName,
    servicePort: 80,
    protocol: 'TCP',
    targetPortNumeric: opts.numeric ?? false,
    containerPortName,
    containerPort,
    agentPort,
  };
}

/** A Deployment `web`'s configuration with the given intercepts per container. */
export function config(containers: Record<string, AgentIntercept[]>, overrides: Partial<AgentConfig> = {}): AgentConfig {
  return {
    version: AGENT_CONFIG_VERSION,
    agentName: 'web',
    namespace: 'apps',
    workloadName: 'web',
    workloadKind: 'Deployment',
    agentImage: 'tp-local/traffic-agent:0.1.0',
    managerHost: 'traffic-manager.tp-system',
    managerPort: 8081,
    agentApiPort: 9900,
    logLevel: 'info',
    containers: Object.entries(containers).map(([name, intercepts]) => ({ name, intercepts, mountPoint: `/tel_app_mounts/${name}` })),
    ...overrides,
  };
}

/** An app container with the given `name:number` ports (an unnamed port: `:number`). */
export function container(name: string, ports: string[], extra: Partial<V1Container> = {}): V1Container {
  return {
    name,
    image: `example/${name}:1`,
    ports: ports.map((p) => {
      const [portName, number] = p.split(':');
      return portName === '' || portName === undefined
        ? { containerPort: Number(number), protocol: 'TCP' }
        : { name: portName, containerPort: Number(number), protocol: 'TCP' };
    }),
    ...extra,
  };
}

/** A pod of Deployment `web` as the API server sends it at admission: generateName, no name yet. */
export function pod(containers: V1Container[], extra: { initContainers?: V1Container[] } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-5d8f7c6b9-',
      namespace: 'apps',
      labels: { app: 'web', 'pod-template-hash': '5d8f7c6b9' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f7c6b9', uid: 'rs-uid', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: { containers, ...(extra.initContainers === undefined ? {} : { initContainers: extra.initContainers }) },
  };
}

/** The five cases the patch snapshots cover (the second pass is derived from the first). */
export function patchCases(): Array<{ name: string; pod: V1Pod; config: AgentConfig }> {
  return [
    {
      name: 'symbolic port',
      pod: pod([container('app', ['http:8080'])]),
      config: config({ app: [intercept('http', 8080, 9901)] }),
    },
    {
      name: 'numeric port',
      pod: pod([container('app', [':8080'])]),
      config: config({ app: [intercept('', 8080, 9901, { numeric: true })] }),
    },
    {
      name: 'two containers with three ports',
      pod: pod([container('app', ['http:8080', 'metrics:9090']), container('grpc', ['grpc:50051'])]),
      config: config({
        app: [intercept('http', 8080, 9901), intercept('metrics', 9090, 9902, { numeric: true, service: 'metrics' })],
        grpc: [intercept('grpc', 50051, 9903, { service: 'grpc' })],
      }),
    },
    {
      name: 'a pod with probes',
      pod: pod([
        container('app', ['http:8080', 'admin:8081'], {
          livenessProbe: { httpGet: { path: '/live', port: 'http' }, periodSeconds: 10 },
          readinessProbe: { tcpSocket: { port: 'http' } },
          startupProbe: { httpGet: { path: '/started', port: 'admin' } },
          lifecycle: { preStop: { httpGet: { path: '/drain', port: 'http' } } },
        }),
      ]),
      config: config({ app: [intercept('http', 8080, 9901)] }),
    },
  ];
}

/** The settings the samples' configurations carry (`config()`'s defaults). */
export const BUILD = {
  agentImage: 'tp-local/traffic-agent:0.1.0',
  managerHost: 'traffic-manager.tp-system',
  managerPort: 8081,
  logLevel: 'info',
} as const;

/** Deployment `web` of namespace `apps`, whose pods are `pod(containers)`; `annotations` on its pod template. */
export function deployment(containers: V1Container[], annotations?: Record<string, string>): KubeWorkload {
  const labels = { app: 'web' };
  return {
    kind: 'Deployment',
    name: 'web',
    namespace: 'apps',
    object: {
      metadata: { name: 'web', namespace: 'apps' },
      spec: { selector: { matchLabels: labels }, template: { metadata: { labels, ...(annotations === undefined ? {} : { annotations }) }, spec: { containers } } },
    },
  };
}

/** Service `web` of namespace `apps`: port `http` 80 to the pods' port `targetPort` (by default the name `http`). */
export function service(targetPort: string | number = 'http'): V1Service {
  return {
    metadata: { name: 'web', namespace: 'apps', uid: 'uid-web' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort, protocol: 'TCP' }] },
  };
}
