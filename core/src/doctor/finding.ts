/**
 * What `doctor` reports: one finding per check, each with a status, a one-line message and the
 * fix (a command to type where there is one). The checks are plain functions over narrow ports
 * (this folder's other files); a check that throws becomes a failed finding carrying the error's
 * message and hint, so one broken check never hides the others.
 */
import { toTpError } from '../errors.js';

export type FindingStatus = 'ok' | 'warn' | 'fail';

/** Where a check looks: the text output groups its findings by these, in this order. */
export type FindingGroup = 'cluster' | 'permissions' | 'workstation';

export const FINDING_GROUPS: readonly FindingGroup[] = ['cluster', 'permissions', 'workstation'];

export interface Finding {
  /** A stable kebab-case name (`agent-injector`, `rbac-connect`, `subnets`) that scripts branch on. */
  readonly check: string;
  readonly group: FindingGroup;
  readonly status: FindingStatus;
  /** One line for people: what was found. */
  readonly message: string;
  /** What to do about it, a command where there is one; '' when there is nothing to do. */
  readonly fix: string;
}

export function ok(check: string, group: FindingGroup, message: string): Finding {
  return { check, group, status: 'ok', message, fix: '' };
}

export function warn(check: string, group: FindingGroup, message: string, fix = ''): Finding {
  return { check, group, status: 'warn', message, fix };
}

export function fail(check: string, group: FindingGroup, message: string, fix = ''): Finding {
  return { check, group, status: 'fail', message, fix };
}

/**
 * Runs one check; whatever it throws becomes a failed finding with the error's message and its
 * hint as the fix (a check that cannot even ask the cluster has found something wrong).
 */
export async function guarded(check: string, group: FindingGroup, run: () => Promise<Finding | Finding[]>): Promise<Finding[]> {
  try {
    const found = await run();
    return Array.isArray(found) ? found : [found];
  } catch (err: unknown) {
    const e = toTpError(err);
    return [fail(check, group, e.message, e.hint ?? '')];
  }
}

/** Counts per status, for the summary line. */
export function tally(findings: readonly Finding[]): Record<FindingStatus, number> {
  const counts: Record<FindingStatus, number> = { ok: 0, warn: 0, fail: 0 };
  for (const f of findings) counts[f.status]++;
  return counts;
}

/** Whether the run found anything that stops telepresence from working (the CLI's exit code). */
export function anyFailed(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.status === 'fail');
}
