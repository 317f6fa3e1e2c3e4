/**
 * The status-bar item's text and tooltip, from the session's phase, intercepts and outbound
 * access. Pure.
 */
import type { OutboundStatus } from '@telepresence-ts/core';
import { outboundLines } from './outbound.js';
import type { Phase } from './session.js';

export interface StatusBarView {
  readonly text: string;
  /** The first line is the connection; the lines after it describe outbound access. */
  readonly tooltip: string;
  /** The command a click runs. */
  readonly command: string;
  /** Drawn with the warning background: connected, but outbound access failed. */
  readonly warning: boolean;
}

/**
 * Connected, the text is the context with `$(globe)` while outbound access is up (the workstation
 * reaches the cluster's Services by name) or `$(warning)` when it failed, then the number of this
 * daemon's intercepts. A daemon that reports no outbound status (an older one) shows neither.
 */
export function statusBarView(phase: Phase, context: string | undefined, intercepts: number, outbound?: OutboundStatus): StatusBarView {
  switch (phase) {
    case 'connected': {
      const failed = outbound?.state === 'failed';
      const mark = outbound?.state === 'up' ? ' $(globe)' : failed ? ' $(warning)' : '';
      const first = `Telepresence: connected to ${context ?? ''}; ${intercepts} intercept${intercepts === 1 ? '' : 's'}`;
      return {
        text: `$(cloud) ${context ?? ''}${mark}${intercepts > 0 ? ` $(debug-disconnect) ${intercepts}` : ''}`,
        tooltip: [first, ...outboundLines(outbound)].join('\n'),
        // What failed is in the log; otherwise the tree is what there is to see.
        command: failed ? 'telepresence.showLogs' : 'telepresence.workloads.focus',
        warning: failed,
      };
    }
    case 'connecting':
      return { text: '$(sync~spin) Telepresence', tooltip: 'Telepresence: connecting', command: 'telepresence.showLogs', warning: false };
    case 'no-manager':
      return { text: '$(warning) Telepresence', tooltip: 'Telepresence: the traffic-manager is not installed', command: 'telepresence.installManager', warning: false };
    case 'disconnected':
      return { text: '$(debug-disconnect) Telepresence', tooltip: 'Telepresence: not connected (click to connect)', command: 'telepresence.connect', warning: false };
  }
}
