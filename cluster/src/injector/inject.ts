/**
 * The centre of the agent-injector: a pure function from a pod and its workload's agent
 * configuration to the pod with the traffic-agent (ADR 0002, "How traffic reaches the agent").
 * The webhook turns the difference into a JSON patch (patch.ts); nothing here does I/O.
 *
 * The Kubernetes types are imported as types only (erased by esbuild): the pod is the plain JSON
 * of an AdmissionReview, which has the shape of V1Pod.
 */
import { AGENTS_CONFIGMAP, AGENT_CONTAINER_NAME, DEFAULT_AGENT_RESOURCES, ENV, HEALTHZ_PATH, LABELS } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import type {
  V1Container,
  V1ContainerPort,
  V1EnvFromSource,
  V1EnvVar,
  V1LifecycleHandler,
  V1Pod,
  V1Probe,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { appEnvPrefix, copyForAgent } from '../shared/app-env.js';
import { AGENT_CONFIG_HASH_ANNOTATION, agentConfigHash } from '../shared/agent-config-hash.js';
import { allIntercepts, type AgentConfig, type AgentIntercept } from '@telepresence-ts/core/agent-config';

/** The init container that redirects numeric target ports to the agent with iptables. */
export const AGENT_INIT_CONTAINER_NAME = 'tel-agent-init';
/** The pod volume holding the workload's entry of the agents ConfigMap. */
export const AGENT_CONFIG_VOLUME = 'traffic-agent-config';
/** Where the agent container mounts that volume, and the file in it. */
export const AGENT_CONFIG_DIR = '/etc/traffic-agent';
export const AGENT_CONFIG_FILE = 'config.json';
/**
 * Prefix of a hidden app port name: the app's `http` becomes `tm-http`, so that the Service's
 * `targetPort: http` resolves to the agent's port `http` instead.
 */
export const HIDDEN_PORT_PREFIX = 'tm-';
// IANA_SVC_NAME, the rule for container port names: at most 15 characters.
const MAX_PORT_NAME = 15;

/**
 * The agent container's resources when its configuration names none (install's --agent-requests
 * and --agent-limits, the chart's agent.resources): DEFAULT_AGENT_RESOURCES.
 */
export const AGENT_RESOURCES: V1ResourceRequirements = { requests: { ...DEFAULT_AGENT_RESOURCES.requests } };
const INIT_RESOURCES: V1ResourceRequirements = { requests: { cpu: '10m', memory: '32Mi' } };

/**
 * The agent container's securityContext: what Pod Security's `restricted` level asks of a
 * container, which the agent needs nothing beyond (it runs as the image's unprivileged user,
 * listens above 1024 and reads the app's volumes as a member of the pod's groups). So it passes
 * wherever the app's own containers do. `runAsNonRoot` is left out for a pod that sets uid 0
 * for all its containers, where the kubelet would refuse to start the agent.
 */
function agentSecurityContext(pod: V1Pod): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    ...(pod.spec?.securityContext?.runAsUser === 0 ? {} : { runAsNonRoot: true }),
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export interface InjectOptions {
  /** `agentConfigHash(config)`, when the caller has it already. */
  readonly hash?: string;
}

/** Thrown when the pod cannot carry the agent for this configuration. */
export function injectError(message: string): TpError {
  return new TpError('config', 'agent-injection-failed', message, {
    hint: 'rename the conflicting container port of the workload, or remove its agent configuration',
  });
}

/**
 * The name an app port is hidden under: `tm-<name>`, cut to 15 characters without a trailing
 * hyphen (IANA_SVC_NAME forbids it). Deterministic, so an injection can be undone from the agent's
 * port names alone.
 */
export function hiddenPortName(name: string): string {
  return `${HIDDEN_PORT_PREFIX}${name}`.slice(0, MAX_PORT_NAME).replace(/-+$/, '');
}

/** True when the pod carries any part of an agent (container, init container or hash). */
export function isInjected(pod: V1Pod): boolean {
  return (
    (pod.spec?.containers ?? []).some((c) => c.name === AGENT_CONTAINER_NAME) ||
    (pod.spec?.initContainers ?? []).some((c) => c.name === AGENT_INIT_CONTAINER_NAME) ||
    pod.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION] !== undefined
  );
}

/**
 * The pod with the traffic-agent for `config`. Never mutates `pod`.
 *
 * - Already injected with this config (same hash): returned unchanged, so the patch is empty.
 * - Injected with another config: the old agent is removed first (`removeAgent`) and the new one
 *   added, so the pod never carries two agents or a stale init container.
 *
 * Throws a `config` TpError when an app port cannot be hidden because its hidden name is taken.
 */
export function injectAgent(pod: V1Pod, config: AgentConfig, opts: InjectOptions = {}): V1Pod {
  const hash = opts.hash ?? agentConfigHash(config);
  const out = structuredClone(pod);
  const hasAgent = (out.spec?.containers ?? []).some((c) => c.name === AGENT_CONTAINER_NAME);
  if (hasAgent && out.metadata?.annotations?.[AGENT_CONFIG_HASH_ANNOTATION] === hash) {
    return out;
  }
  const clean = isInjected(out) ? removeAgent(out) : out;
  return addAgent(clean, config, hash);
}

/**
 * The pod without any agent: the agent and init containers, the config volume, the hash
 * annotation and injected label removed, and every app port hidden for an agent port restored.
 * Probes rewritten from a name to a number keep the number (they reach the same port). Never
 * mutates `pod`.
 */
export function removeAgent(pod: V1Pod): V1Pod {
  const out = structuredClone(pod);
  const spec = out.spec;
  if (spec !== undefined) {
    const agent = spec.containers.find((c) => c.name === AGENT_CONTAINER_NAME);
    const restore = new Map<string, string>();
    for (const p of agent?.ports ?? []) {
      if (p.name !== undefined && p.name !== '') restore.set(hiddenPortName(p.name), p.name);
    }
    spec.containers = spec.containers.filter((c) => c.name !== AGENT_CONTAINER_NAME);
    for (const c of spec.containers) {
      for (const p of c.ports ?? []) {
        const original = p.name === undefined ? undefined : restore.get(p.name);
        if (original !== undefined) p.name = original;
      }
    }
    if (spec.initContainers !== undefined) {
      spec.initContainers = spec.initContainers.filter((c) => c.name !== AGENT_INIT_CONTAINER_NAME);
      if (spec.initContainers.length === 0) delete spec.initContainers;
    }
    if (spec.volumes !== undefined) {
      spec.volumes = spec.volumes.filter((v) => v.name !== AGENT_CONFIG_VOLUME);
      if (spec.volumes.length === 0) delete spec.volumes;
    }
  }
  const meta = out.metadata;
  if (meta?.annotations !== undefined) {
    delete meta.annotations[AGENT_CONFIG_HASH_ANNOTATION];
    if (Object.keys(meta.annotations).length === 0) delete meta.annotations;
  }
  if (meta?.labels !== undefined) {
    delete meta.labels[LABELS.agentInjected];
    if (Object.keys(meta.labels).length === 0) delete meta.labels;
  }
  return out;
}

/**
 * `containerPort:agentPort` pairs, as the init container's environment carries them; once each,
 * though several Service ports may lead to the same app port.
 */
export function formatInitPorts(intercepts: readonly AgentIntercept[]): string {
  return [...new Set(intercepts.map((ic) => `${ic.containerPort}:${ic.agentPort}`))].join(',');
}

function addAgent(pod: V1Pod, config: AgentConfig, hash: string): V1Pod {
  const spec = pod.spec;
  if (spec === undefined) throw injectError('the pod has no spec');
  const connections = allIntercepts(config);

  // Ports the agent container declares: named like the Service's symbolic targetPort (so the
  // Service selects it), unnamed for numeric ones (the init container redirects to them).
  const agentPorts: V1ContainerPort[] = [];
  const seenNames = new Set<string>();
  const seenNumbers = new Set<number>([config.agentApiPort]);
  const numeric: AgentIntercept[] = [];
  for (const { container, intercept } of connections) {
    if (intercept.targetPortNumeric) {
      numeric.push(intercept);
      if (!seenNumbers.has(intercept.agentPort)) {
        seenNumbers.add(intercept.agentPort);
        agentPorts.push({ containerPort: intercept.agentPort, protocol: intercept.protocol });
      }
      continue;
    }
    const name = intercept.containerPortName;
    // Two Services may target the same named port; the pod can route a name to one port only.
    if (seenNames.has(name) || seenNumbers.has(intercept.agentPort)) continue;
    seenNames.add(name);
    seenNumbers.add(intercept.agentPort);
    agentPorts.push({ name, containerPort: intercept.agentPort, protocol: intercept.protocol });
    const app = spec.containers.find((c) => c.name === container.name);
    // A replaced container leaves the pod (below): its port needs no hiding, the name is free.
    if (app !== undefined && container.replaced !== true) hidePort(spec.containers, app, name);
  }

  // Each served container's env and volumes, for the kubelet to resolve as it does for the app
  // (ADR 0003); its own variables after them, so that no app variable can shadow one.
  const appEnv: V1EnvVar[] = [];
  const appEnvFrom: V1EnvFromSource[] = [];
  const appMounts: V1VolumeMount[] = [];
  config.containers.forEach((c, index) => {
    const app = spec.containers.find((sc) => sc.name === c.name);
    if (app === undefined) return;
    const copy = copyForAgent(app, appEnvPrefix(index), c.mountPoint);
    appEnv.push(...copy.env);
    appEnvFrom.push(...copy.envFrom);
    appMounts.push(...copy.volumeMounts);
  });

  const agent: V1Container = {
    name: AGENT_CONTAINER_NAME,
    image: config.agentImage,
    // The image's entrypoint is the agent program; its first argument picks the mode.
    args: ['agent'],
    ports: agentPorts,
    ...(appEnvFrom.length > 0 ? { envFrom: appEnvFrom } : {}),
    env: [...appEnv, ...agentEnv(config)],
    volumeMounts: [{ name: AGENT_CONFIG_VOLUME, mountPath: AGENT_CONFIG_DIR, readOnly: true }, ...appMounts],
    readinessProbe: {
      httpGet: { path: HEALTHZ_PATH, port: config.agentApiPort },
      periodSeconds: 5,
      failureThreshold: 3,
    },
    resources: config.resources ?? AGENT_RESOURCES,
    securityContext: agentSecurityContext(pod),
  };
  // A replaced container does not run: the agent, which has its env, volumes and ports (symbolic
  // ones by name, numeric ones by the init container's redirect), serves them alone. Its probes
  // and lifecycle hooks go with it. Not undone by `removeAgent` (a pod cannot get a container
  // back); pods are only ever injected as they are created from their template, which has it.
  const replaced = new Set(config.containers.filter((c) => c.replaced === true).map((c) => c.name));
  spec.containers = [...spec.containers.filter((c) => !replaced.has(c.name)), agent];

  if (numeric.length > 0) {
    const init: V1Container = {
      name: AGENT_INIT_CONTAINER_NAME,
      image: config.agentImage,
      args: ['init'],
      env: [
        { name: ENV.agentInitPorts, value: formatInitPorts(numeric) },
        { name: ENV.logLevel, value: config.logLevel },
        { name: ENV.podIp, valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ],
      // iptables needs NET_ADMIN in the pod's network namespace, and root to use it (the image
      // runs as an unprivileged user otherwise).
      securityContext: { capabilities: { add: ['NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false },
      resources: INIT_RESOURCES,
    };
    spec.initContainers = [...(spec.initContainers ?? []), init];
  }

  const volume: V1Volume = {
    name: AGENT_CONFIG_VOLUME,
    configMap: { name: AGENTS_CONFIGMAP, items: [{ key: config.agentName, path: AGENT_CONFIG_FILE }] },
  };
  spec.volumes = [...(spec.volumes ?? []), volume];

  const meta = (pod.metadata ??= {});
  meta.annotations = { ...meta.annotations, [AGENT_CONFIG_HASH_ANNOTATION]: hash };
  const labels: Record<string, string> = { ...meta.labels, [LABELS.agentInjected]: 'true' };
  // Label values are at most 63 characters; a longer workload name (legal for a Deployment) is
  // still found through owner references, just not by label.
  if (isLabelValue(config.workloadName)) labels[LABELS.workloadName] = config.workloadName;
  labels[LABELS.workloadKind] = config.workloadKind;
  meta.labels = labels;
  return pod;
}

function agentEnv(config: AgentConfig): V1EnvVar[] {
  const field = (fieldPath: string): V1EnvVar['valueFrom'] => ({ fieldRef: { fieldPath } });
  return [
    { name: ENV.agentName, value: config.agentName },
    { name: ENV.agentNamespace, valueFrom: field('metadata.namespace') },
    { name: ENV.podName, valueFrom: field('metadata.name') },
    { name: ENV.podIp, valueFrom: field('status.podIP') },
    { name: ENV.managerHost, value: config.managerHost },
    { name: ENV.managerPort, value: String(config.managerPort) },
    { name: ENV.agentPort, value: String(config.agentApiPort) },
    { name: ENV.logLevel, value: config.logLevel },
    { name: ENV.agentConfigPath, value: `${AGENT_CONFIG_DIR}/${AGENT_CONFIG_FILE}` },
  ];
}

/**
 * Renames the app container's port `name` to its hidden name and points the container's probes
 * and lifecycle hooks that named it at its number instead. A port the container does not have (the
 * template changed since the config was made) is left alone.
 */
function hidePort(all: readonly V1Container[], app: V1Container, name: string): void {
  const port = (app.ports ?? []).find((p) => p.name === name);
  if (port === undefined) return;
  const hidden = hiddenPortName(name);
  const taken = all.some((c) => (c.ports ?? []).some((p) => p !== port && p.name === hidden));
  if (taken) {
    throw injectError(`container ${app.name}: cannot hide port "${name}" as "${hidden}": another port already has that name`);
  }
  port.name = hidden;
  const number = port.containerPort;
  for (const probe of [app.livenessProbe, app.readinessProbe, app.startupProbe]) {
    if (probe !== undefined) rewriteHandler(probe, name, number);
  }
  if (app.lifecycle?.postStart !== undefined) rewriteHandler(app.lifecycle.postStart, name, number);
  if (app.lifecycle?.preStop !== undefined) rewriteHandler(app.lifecycle.preStop, name, number);
}

function rewriteHandler(handler: V1Probe | V1LifecycleHandler, name: string, number: number): void {
  if (handler.httpGet?.port === name) handler.httpGet.port = number;
  if (handler.tcpSocket?.port === name) handler.tcpSocket.port = number;
}

function isLabelValue(v: string): boolean {
  return v.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v);
}
