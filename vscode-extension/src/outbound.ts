/**
 * Outbound access as the extension handles it, free of any vscode import: the Connect request's
 * `outbound` part from the settings, the status-bar lines that say what is routed, and what a
 * refused connect means in terms of settings rather than the CLI's flags, and why a connect got
 * none.
 */
import type { OutboundRequest, OutboundStatus, TpError } from '@telepresence-ts/core';
import { CLI_SHIM, cliProblem, type CliLookup } from './cli-bundle.js';
import type { Settings } from './host.js';

/** The settings outbound access reads. */
export type OutboundSettings = Pick<Settings, 'outbound' | 'alsoProxy' | 'neverProxy'>;

/** Where a refused connect sends the user: the Settings editor showing this extension's settings. */
export const OUTBOUND_SETTINGS_QUERY = '@ext:telepresence-ts.telepresence-ts';

/**
 * `ConnectRequest.outbound` from the settings. Blank entries are dropped; everything else goes to
 * the daemon as typed, which refuses a bad subnet (`bad-subnet`) before anything connects.
 */
export function outboundRequest(s: OutboundSettings): OutboundRequest {
  const cidrs = (list: readonly string[]): string[] => list.map((c) => c.trim()).filter((c) => c !== '');
  return { disabled: !s.outbound, alsoProxy: cidrs(s.alsoProxy), neverProxy: cidrs(s.neverProxy) };
}

/**
 * The daemon's errors that a change of settings resolves. Their hints name the CLI's flags
 * (`--never-proxy`, `--outbound=false`), since the daemon cannot know which front end asked;
 * this says the same in settings. Keyed by code, never by message text.
 */
const SETTINGS_HINTS: Readonly<Record<string, string>> = {
  'subnet-conflict':
    "in VS Code: add this workstation's route to telepresence.neverProxy, or turn telepresence.outbound off for intercepts only",
  'needs-root': 'in VS Code: turn telepresence.outbound off for intercepts only',
  'bad-subnet': 'in VS Code: check telepresence.alsoProxy and telepresence.neverProxy',
  'no-cluster-subnets': 'in VS Code: name them in telepresence.alsoProxy, or turn telepresence.outbound off for intercepts only',
};

/** What to add to a connect error's hint, when a setting resolves it. */
export function outboundSettingsHint(err: TpError): string | undefined {
  return SETTINGS_HINTS[err.code];
}

/** The tooltip lines on outbound access; none from a daemon that does not report it. */
export function outboundLines(o: OutboundStatus | undefined): string[] {
  if (o === undefined) return [];
  switch (o.state) {
    case 'up': {
      const lines = [`Outbound access: ${o.routed.join(', ')} routed into ${o.device}`];
      if (o.neverProxied.length > 0) lines.push(`Never proxied: ${o.neverProxied.join(', ')}`);
      if (o.dnsDomains.length > 0) lines.push(`Cluster DNS: names in ${o.dnsDomains.join(', ')}`);
      return lines;
    }
    case 'failed':
      return [`Outbound access failed: ${o.error !== '' ? o.error : 'see the daemon log'}`];
    case 'off':
      return ['Outbound access: off (intercepts only)'];
    default:
      return [`Outbound access: ${o.state}`];
  }
}

/**
 * The notification when outbound access fails while connected (the network daemon died, say),
 * once per failure: undefined unless `next` failed and `previous` had not. Intercepts keep
 * working; a new connection brings outbound access up again.
 */
export function outboundFailureMessage(previous: OutboundStatus | undefined, next: OutboundStatus | undefined): string | undefined {
  if (next?.state !== 'failed' || previous?.state === 'failed') return undefined;
  const why = next.error !== '' ? next.error : 'see the daemon log';
  return `Telepresence: outbound access failed: ${why} (intercepts still work; Disconnect and Connect again to reach the cluster's Services)`;
}

/**
 * The warning when Connect asked for outbound access and the daemon has none to give
 * (Session.outboundMissing): the daemon found no CLI of this version. `lookup` is the daemon's
 * lookup made again here, with the same PATH and setting, so the message can name what it met.
 */
export function outboundMissingMessage(lookup: CliLookup): string {
  const problem = cliProblem(lookup);
  if (problem === undefined) {
    // There is one now: installed, or named in the setting, after the daemon started.
    const found = lookup.found?.path ?? CLI_SHIM;
    return `Connected for intercepts only: the daemon started without a ${CLI_SHIM} CLI for outbound access, and there is one now (v${lookup.want} at ${found}). Disconnect, then Connect, to use it.`;
  }
  return `Connected for intercepts only: outbound access needs the ${CLI_SHIM} CLI v${lookup.want} (for its network daemon), and ${problem.reason}. Fix: ${problem.fix}; then Disconnect and Connect. Or turn telepresence.outbound off.`;
}
