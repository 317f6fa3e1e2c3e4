import t from 'tap';
import { statusBarView } from '../src/status-bar.js';

const cases = [
  { phase: 'connected', context: 'kind', intercepts: 0, text: '$(cloud) kind', command: 'telepresence.workloads.focus', tooltip: /connected to kind; 0 intercepts/ },
  { phase: 'connected', context: 'kind', intercepts: 1, text: '$(cloud) kind $(debug-disconnect) 1', command: 'telepresence.workloads.focus', tooltip: /1 intercept$/ },
  { phase: 'connected', context: 'kind', intercepts: 2, text: '$(cloud) kind $(debug-disconnect) 2', command: 'telepresence.workloads.focus', tooltip: /2 intercepts/ },
  { phase: 'connecting', context: undefined, intercepts: 0, text: '$(sync~spin) Telepresence', command: 'telepresence.showLogs', tooltip: /connecting/ },
  { phase: 'no-manager', context: undefined, intercepts: 0, text: '$(warning) Telepresence', command: 'telepresence.installManager', tooltip: /not installed/ },
  { phase: 'disconnected', context: undefined, intercepts: 0, text: '$(debug-disconnect) Telepresence', command: 'telepresence.connect', tooltip: /not connected/ },
] as const;
for (const c of cases) {
  t.test(`${c.phase} with ${c.intercepts} intercepts`, (t) => {
    const view = statusBarView(c.phase, c.context, c.intercepts);
    t.equal(view.text, c.text);
    t.equal(view.command, c.command);
    t.match(view.tooltip, c.tooltip);
    t.end();
  });
}
