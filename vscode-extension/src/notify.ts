/**
 * Errors as notifications: the level follows the error's category, and every one offers the
 * logs; those where trying again may help (the cluster's) offer Retry too. An error that a
 * setting resolves (a subnet conflict, no root for outbound access) says which, and offers the
 * settings.
 */
import { toTpError, type LostIntercept } from '@telepresence-ts/core';
import type { Host, MessageLevel } from './host.js';
import { OUTBOUND_SETTINGS_QUERY, outboundSettingsHint } from './outbound.js';

export const SHOW_LOGS = 'Show Logs';
export const RETRY = 'Retry';
export const OPEN_SETTINGS = 'Open Settings';

/** Shows `err` (with its hint) after `what failed`; runs `retry` when the user asks for it. */
export async function reportError(host: Host, what: string, err: unknown, retry?: () => Promise<void>): Promise<void> {
  const e = toTpError(err);
  const level: MessageLevel = e.category === 'user' ? 'warning' : 'error';
  const setting = outboundSettingsHint(e);
  const hints = [e.hint, setting].filter((h): h is string => h !== undefined);
  const text = `${what}: ${e.message}${hints.length > 0 ? ` (${hints.join('; ')})` : ''}`;
  host.log(`${what}: [${e.category}/${e.code}] ${e.message}${e.hint !== undefined ? `; hint: ${e.hint}` : ''}`);
  const actions = [
    ...(setting !== undefined ? [OPEN_SETTINGS] : []),
    ...(retry !== undefined && (e.category === 'cluster' || e.category === 'internal') ? [RETRY] : []),
    SHOW_LOGS,
  ];
  const choice = await host.showMessage(level, text, actions);
  if (choice === SHOW_LOGS) host.showLog();
  else if (choice === OPEN_SETTINGS) await host.openSettings(OUTBOUND_SETTINGS_QUERY);
  else if (choice === RETRY && retry !== undefined) await retry();
}

/**
 * The warnings for intercepts that the daemon newly reports lost (the traffic-manager restarted
 * and they could not be made again): one per intercept, once, with the reason.
 */
export function lostInterceptMessages(previous: readonly LostIntercept[], next: readonly LostIntercept[]): string[] {
  const known = new Set(previous.map((l) => l.name));
  return next
    .filter((l) => !known.has(l.name))
    .map((l) => `Telepresence: intercept ${l.name} was lost when the traffic-manager restarted and could not be restored: ${l.reason}. Intercept the workload again when it is back.`);
}
