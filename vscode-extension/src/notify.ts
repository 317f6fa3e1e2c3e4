/**
 * Errors as notifications: the level follows the error's category, and every one offers the
 * logs; those where trying again may help (the cluster's) offer Retry too.
 */
import { toTpError } from '@telepresence-ts/core';
import type { Host, MessageLevel } from './host.js';

export const SHOW_LOGS = 'Show Logs';
export const RETRY = 'Retry';

/** Shows `err` (with its hint) after `what failed`; runs `retry` when the user asks for it. */
export async function reportError(host: Host, what: string, err: unknown, retry?: () => Promise<void>): Promise<void> {
  const e = toTpError(err);
  const level: MessageLevel = e.category === 'user' ? 'warning' : 'error';
  const text = `${what}: ${e.message}${e.hint !== undefined ? ` (${e.hint})` : ''}`;
  host.log(`${what}: [${e.category}/${e.code}] ${e.message}${e.hint !== undefined ? `; hint: ${e.hint}` : ''}`);
  const actions = retry !== undefined && (e.category === 'cluster' || e.category === 'internal') ? [RETRY, SHOW_LOGS] : [SHOW_LOGS];
  const choice = await host.showMessage(level, text, actions);
  if (choice === SHOW_LOGS) host.showLog();
  else if (choice === RETRY && retry !== undefined) await retry();
}
