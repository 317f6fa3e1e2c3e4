/** The status-bar item's text and tooltip, from the session's phase and intercepts. Pure. */
import type { Phase } from './session.js';

export interface StatusBarView {
  readonly text: string;
  readonly tooltip: string;
  /** The command a click runs. */
  readonly command: string;
}

export function statusBarView(phase: Phase, context: string | undefined, intercepts: number): StatusBarView {
  switch (phase) {
    case 'connected':
      return {
        text: `$(cloud) ${context ?? ''}${intercepts > 0 ? ` $(debug-disconnect) ${intercepts}` : ''}`,
        tooltip: `Telepresence: connected to ${context ?? ''}; ${intercepts} intercept${intercepts === 1 ? '' : 's'}`,
        command: 'telepresence.workloads.focus',
      };
    case 'connecting':
      return { text: '$(sync~spin) Telepresence', tooltip: 'Telepresence: connecting', command: 'telepresence.showLogs' };
    case 'no-manager':
      return { text: '$(warning) Telepresence', tooltip: 'Telepresence: the traffic-manager is not installed', command: 'telepresence.installManager' };
    case 'disconnected':
      return { text: '$(debug-disconnect) Telepresence', tooltip: 'Telepresence: not connected (click to connect)', command: 'telepresence.connect' };
  }
}
