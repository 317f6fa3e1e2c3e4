/**
 * What an engagement of a workload does with its traffic (`InterceptSpec.mode`): one definition
 * for the CLI, the daemon, the traffic-manager, the agent and the VS Code extension.
 *
 * - `intercept`: the port's traffic (or a personal intercept's requests) goes to the workstation.
 * - `ingest`: no traffic at all; the container's environment and volumes come to the workstation,
 *   and the app in the cluster keeps every request.
 * - `wiretap` and `replace` are reserved in the contract; no front end makes them yet.
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
