/**
 * How the traffic-agent learns an app container's real environment and volumes (ADR 0003): the
 * injector copies the container's `env`, `envFrom` and `volumeMounts` into the agent container,
 * env names under a per-container prefix and mounts under the container's mount root, so that the
 * kubelet resolves Secrets, ConfigMaps and `$(VAR)` references for the agent exactly as for the
 * app; the agent strips the prefix again. Both halves live here, next to each other. Pure: no I/O.
 */
import { ENV } from '@telepresence-ts/core/contracts';
import type { V1Container, V1EnvFromSource, V1EnvVar, V1VolumeMount } from '@kubernetes/client-node';

/** Prefix of app container `index` (its place in the agent configuration's `containers`). */
export function appEnvPrefix(index: number): string {
  return `TP_APP${index}_`;
}

/** Any container's prefixed copy, which is never a variable of the agent's own. */
const ANY_APP_PREFIX = /^TP_APP\d+_/;
/** The agent's own variables, some of which look like service links (TP_AGENT_PORT). */
const AGENT_VARS = new Set<string>(Object.values(ENV));

/**
 * Name, under the container's prefix, of the variable listing the container's volume mount paths
 * (colon-separated), so that the agent knows what it serves without reading the pod.
 */
export const APP_MOUNTS_VAR = 'TELEPRESENCE_MOUNTS';

/**
 * The variables the kubelet derives from Services (`enableServiceLinks`): `<SVC>_SERVICE_HOST`,
 * `<SVC>_SERVICE_PORT[_<NAME>]`, `<SVC>_PORT[_<n>_<PROTO>[_PROTO|_PORT|_ADDR]]`. Every container of
 * the pod gets the same ones, unprefixed, so the agent reports its own.
 */
const SERVICE_LINK_VAR = /^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/;

export function isServiceLinkVar(name: string): boolean {
  return SERVICE_LINK_VAR.test(name);
}

/**
 * `value` with each `$(NAME)` reference renamed by `rename` (undefined: left as is), in the
 * kubelet's syntax: `$$` is an escaped `$` and never starts a reference.
 */
export function renameReferences(value: string, rename: (name: string) => string | undefined): string {
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i];
    if (c !== '$' || i + 1 >= value.length) {
      out += c;
      i++;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      out += '$$';
      i += 2;
    } else if (next === '(') {
      const end = value.indexOf(')', i + 2);
      if (end < 0) {
        out += value.slice(i);
        break;
      }
      const name = value.slice(i + 2, end);
      out += `$(${rename(name) ?? name})`;
      i = end + 1;
    } else {
      out += '$';
      i++;
    }
  }
  return out;
}

/** What the agent container gets for one app container. */
export interface AppCopy {
  readonly env: V1EnvVar[];
  readonly envFrom: V1EnvFromSource[];
  readonly volumeMounts: V1VolumeMount[];
}

/**
 * The app container's env, envFrom and volume mounts as the agent container carries them.
 *
 * A `$(NAME)` reference is renamed to the prefixed name when NAME is an earlier `env` entry (the
 * kubelet resolves only those), or when the container has `envFrom` and NAME is not a service-link
 * variable (it then most likely comes from a ConfigMap or Secret, whose keys the injector cannot
 * see). Service-link variables and unknown names stay: they resolve (or not) alike in both
 * containers. The one divergence: a reference to a service-link-shaped key of an envFrom source.
 */
export function copyForAgent(app: V1Container, prefix: string, mountRoot: string): AppCopy {
  const defined = new Set<string>();
  const hasEnvFrom = (app.envFrom ?? []).length > 0;
  const rename = (name: string): string | undefined =>
    defined.has(name) || (hasEnvFrom && !isServiceLinkVar(name)) ? `${prefix}${name}` : undefined;
  const env: V1EnvVar[] = [];
  for (const e of app.env ?? []) {
    const copy: V1EnvVar = { ...structuredClone(e), name: `${prefix}${e.name}` };
    if (e.value !== undefined) copy.value = renameReferences(e.value, rename);
    env.push(copy);
    defined.add(e.name);
  }
  const volumeMounts: V1VolumeMount[] = [];
  const paths: string[] = [];
  for (const m of app.volumeMounts ?? []) {
    const copy: V1VolumeMount = { ...structuredClone(m), mountPath: `${mountRoot}${m.mountPath.startsWith('/') ? '' : '/'}${m.mountPath}` };
    // A propagated mount needs privileges the agent does not have; the files are there without it.
    delete copy.mountPropagation;
    if (m.subPathExpr !== undefined) copy.subPathExpr = renameReferences(m.subPathExpr, (n) => (defined.has(n) ? `${prefix}${n}` : undefined));
    volumeMounts.push(copy);
    paths.push(m.mountPath);
  }
  if (paths.length > 0) env.push({ name: `${prefix}${APP_MOUNTS_VAR}`, value: paths.join(':') });
  const envFrom = (app.envFrom ?? []).map((s) => ({ ...structuredClone(s), prefix: `${prefix}${s.prefix ?? ''}` }));
  return { env, envFrom, volumeMounts };
}

/** One app container's environment and mounts, as the agent reports them. */
export interface AppEnvironment {
  readonly env: Record<string, string>;
  readonly mounts: string[];
}

/**
 * The app container's environment from the agent's own: the service-link variables, overlaid with
 * every `<prefix>NAME` as NAME. Image-defined variables (PATH, HOME, ...) of either image are not
 * part of it: the pod spec does not set them, and a local process keeps the workstation's own.
 */
export function appEnvironment(processEnv: Readonly<Record<string, string | undefined>>, prefix: string): AppEnvironment {
  const env: Record<string, string> = {};
  let mounts: string[] = [];
  for (const [name, value] of Object.entries(processEnv)) {
    if (value !== undefined && isServiceLinkVar(name) && !ANY_APP_PREFIX.test(name) && !AGENT_VARS.has(name)) env[name] = value;
  }
  for (const [name, value] of Object.entries(processEnv)) {
    if (value === undefined || !name.startsWith(prefix)) continue;
    const appName = name.slice(prefix.length);
    if (appName === APP_MOUNTS_VAR) mounts = value.split(':').filter((p) => p !== '');
    else env[appName] = value;
  }
  return { env, mounts };
}
