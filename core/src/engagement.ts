/**
 * What an engagement of a workload does with its traffic (`InterceptSpec.mode`): one definition
 * for the CLI, the daemon, the traffic-manager, the agent and the VS Code extension.
 *
 * - `intercept`: the port's traffic (or a personal intercept's requests) goes to the workstation.
 * - `ingest`: no traffic at all; the container's environment and volumes come to the workstation,
 *   and the app in the cluster keeps every request.
 * - `replace`: the container stops running in the cluster (every replica's pods are made again
 *   without it) and the traffic of all its ports goes to the workstation, each to the local port
 *   `ports` maps it to (the same number when not listed); its environment and volumes come too.
 * - `wiretap` is reserved in the contract; no front end makes it yet.
 */
import { TpError } from './errors.js';

export const ENGAGEMENT_MODES = ['intercept', 'ingest', 'wiretap', 'replace'] as const;
export type EngagementMode = (typeof ENGAGEMENT_MODES)[number];

/** The mode of a spec: its `mode`, `intercept` when empty. Throws `bad-mode` for any other value. */
export function engagementMode(spec: { readonly mode?: string }): EngagementMode {
  const mode = spec.mode ?? '';
  if (mode === '') return 'intercept';
  const known = ENGAGEMENT_MODES.find((m) => m === mode);
  if (known === undefined) {
    throw new TpError('user', 'bad-mode', `"${mode}" is not an engagement mode`, { hint: `use one of ${ENGAGEMENT_MODES.join(', ')}` });
  }
  return known;
}

/** Whether the engagement takes any of the port's traffic (an ingest takes none). */
export function takesTraffic(spec: { readonly mode?: string }): boolean {
  const mode = spec.mode ?? '';
  return mode !== 'ingest';
}

/** Whether the engagement replaces its container: the app stops in the cluster while it lasts. */
export function isReplace(spec: { readonly mode?: string }): boolean {
  return spec.mode === 'replace';
}

/**
 * Whether the engagement names a whole container rather than one Service port: an ingest (its
 * environment) and a replace (everything it serves).
 */
export function takesContainer(spec: { readonly mode?: string }): boolean {
  return spec.mode === 'ingest' || spec.mode === 'replace';
}

/** One container port of a replace and the workstation port its traffic goes to (`PortMap`). */
export interface ReplacePort {
  readonly containerPort: number;
  readonly localPort: number;
}

/**
 * Where a replace sends a connection that came to `containerPort`: the local port `ports` maps it
 * to, or the same number when it is not listed. One definition for the traffic-manager (the
 * relayed dial) and the daemon (a direct tunnel), so both paths land on the same port.
 */
export function replaceLocalPort(spec: { readonly ports?: readonly ReplacePort[] }, containerPort: number): number {
  return spec.ports?.find((p) => p.containerPort === containerPort)?.localPort ?? containerPort;
}

/** `8080 -> 18080, 9090`: where a replace's ports go, for people (a port that keeps its number once). */
export function describeReplacePorts(ports: readonly ReplacePort[]): string {
  return ports.map((p) => (p.containerPort === p.localPort ? String(p.containerPort) : `${p.containerPort} -> ${p.localPort}`)).join(', ');
}

/**
 * Whether the engagement takes the connections (or requests) it matches away from the app, as an
 * intercept and a replace do. A wiretap takes a copy and an ingest nothing: neither conflicts
 * with any other engagement, and any number of them may share a port.
 */
export function takesOver(spec: { readonly mode?: string }): boolean {
  const mode = spec.mode ?? '';
  return mode !== 'ingest' && mode !== 'wiretap';
}
