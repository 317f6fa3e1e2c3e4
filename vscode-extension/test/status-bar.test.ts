import t from 'tap';
import { statusBarView } from '../src/status-bar.js';
import { outboundUp } from './fixtures/fake-core.js';

const UP = outboundUp();
const FAILED = outboundUp({ state: 'failed', error: 'the network daemon went away' });
const OFF = outboundUp({ state: 'off', device: '', routed: [], dnsDomains: [] });

const cases = [
  { phase: 'connected', context: 'kind', intercepts: 0, text: '$(cloud) kind', command: 'telepresence.workloads.focus', tooltip: /connected to kind; 0 intercepts$/ },
  { phase: 'connected', context: 'kind', intercepts: 1, text: '$(cloud) kind $(debug-disconnect) 1', command: 'telepresence.workloads.focus', tooltip: /1 intercept$/ },
  { phase: 'connected', context: 'kind', intercepts: 2, text: '$(cloud) kind $(debug-disconnect) 2', command: 'telepresence.workloads.focus', tooltip: /2 intercepts/ },
  {
    phase: 'connected',
    context: 'kind',
    intercepts: 0,
    outbound: UP,
    name: 'outbound up',
    text: '$(cloud) kind $(globe)',
    command: 'telepresence.workloads.focus',
    tooltip:
      /^Telepresence: connected to kind; 0 intercepts\nOutbound access: 10\.244\.0\.0\/16, 10\.96\.0\.0\/16 routed into tpts0\nCluster DNS: names in cluster\.local, shop$/,
  },
  {
    phase: 'connected',
    context: 'kind',
    intercepts: 2,
    outbound: UP,
    name: 'outbound up',
    text: '$(cloud) kind $(globe) $(debug-disconnect) 2',
    command: 'telepresence.workloads.focus',
    tooltip: /; 2 intercepts\nOutbound access: /,
  },
  {
    phase: 'connected',
    context: 'kind',
    intercepts: 0,
    outbound: FAILED,
    name: 'outbound failed',
    text: '$(cloud) kind $(warning)',
    command: 'telepresence.showLogs',
    tooltip: /; 0 intercepts\nOutbound access failed: the network daemon went away$/,
    warning: true,
  },
  {
    phase: 'connected',
    context: 'kind',
    intercepts: 0,
    outbound: OFF,
    name: 'outbound off',
    text: '$(cloud) kind',
    command: 'telepresence.workloads.focus',
    tooltip: /; 0 intercepts\nOutbound access: off \(intercepts only\)$/,
  },
  { phase: 'connecting', context: undefined, intercepts: 0, text: '$(sync~spin) Telepresence', command: 'telepresence.showLogs', tooltip: /connecting/ },
  { phase: 'no-manager', context: undefined, intercepts: 0, text: '$(warning) Telepresence', command: 'telepresence.installManager', tooltip: /not installed/ },
  { phase: 'disconnected', context: undefined, intercepts: 0, text: '$(debug-disconnect) Telepresence', command: 'telepresence.connect', tooltip: /not connected/ },
  // A stale outbound status of a connection that is gone shows nothing of it.
  { phase: 'disconnected', context: undefined, intercepts: 0, outbound: UP, name: 'a stale outbound status', text: '$(debug-disconnect) Telepresence', command: 'telepresence.connect', tooltip: /^Telepresence: not connected \(click to connect\)$/ },
] as const;
for (const c of cases) {
  const outbound = 'outbound' in c ? c.outbound : undefined;
  t.test(`${c.phase} with ${c.intercepts} intercepts${'name' in c ? `, ${c.name}` : ''}`, (t) => {
    const view = statusBarView(c.phase, c.context, c.intercepts, outbound);
    t.equal(view.text, c.text);
    t.equal(view.command, c.command);
    t.match(view.tooltip, c.tooltip);
    t.equal(view.warning, 'warning' in c ? c.warning : false, 'the warning background only when outbound access failed');
    t.end();
  });
}
