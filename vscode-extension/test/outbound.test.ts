import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import type { CliLookup } from '../src/cli-bundle.js';
import { outboundFailureMessage, outboundLines, outboundMissingMessage, outboundRequest, outboundSettingsHint } from '../src/outbound.js';
import { outboundUp } from './fixtures/fake-core.js';

const requests = [
  { name: 'the defaults: on, nothing extra', settings: { outbound: true, alsoProxy: [], neverProxy: [] }, want: { disabled: false, alsoProxy: [], neverProxy: [] } },
  { name: 'off: intercepts only', settings: { outbound: false, alsoProxy: [], neverProxy: [] }, want: { disabled: true, alsoProxy: [], neverProxy: [] } },
  {
    name: 'extra and excluded subnets, in order',
    settings: { outbound: true, alsoProxy: ['192.168.50.0/24', 'fd00::/108'], neverProxy: ['10.96.4.0/24'] },
    want: { disabled: false, alsoProxy: ['192.168.50.0/24', 'fd00::/108'], neverProxy: ['10.96.4.0/24'] },
  },
  {
    name: 'blank entries dropped, the rest trimmed; bad ones left for the daemon to refuse',
    settings: { outbound: true, alsoProxy: [' 10.1.0.0/16 ', '', '  '], neverProxy: ['not-a-cidr'] },
    want: { disabled: false, alsoProxy: ['10.1.0.0/16'], neverProxy: ['not-a-cidr'] },
  },
  { name: 'off keeps the lists (the daemon ignores them)', settings: { outbound: false, alsoProxy: ['10.1.0.0/16'], neverProxy: [] }, want: { disabled: true, alsoProxy: ['10.1.0.0/16'], neverProxy: [] } },
] as const;
for (const c of requests) {
  t.test(`the Connect request's outbound part: ${c.name}`, (t) => {
    t.same(outboundRequest(c.settings), c.want);
    t.end();
  });
}

const hints = [
  { code: 'subnet-conflict', hint: /telepresence\.neverProxy.*telepresence\.outbound off/ },
  { code: 'needs-root', hint: /telepresence\.outbound off/ },
  { code: 'bad-subnet', hint: /telepresence\.alsoProxy and telepresence\.neverProxy/ },
  { code: 'no-cluster-subnets', hint: /telepresence\.alsoProxy/ },
] as const;
for (const c of hints) {
  t.test(`a ${c.code} error names the setting that resolves it`, (t) => {
    t.match(outboundSettingsHint(new TpError('user', c.code, 'refused', { hint: 'pass --never-proxy 10.244.0.0/16' })), c.hint);
    t.end();
  });
}

t.test('other errors get no settings hint, whatever their message says', (t) => {
  t.equal(outboundSettingsHint(new TpError('cluster', 'manager-unreachable', 'subnet-conflict needs-root')), undefined);
  t.end();
});

const lines = [
  { name: 'no status (an older daemon)', status: undefined, want: [] },
  {
    name: 'up: what is routed and the DNS domains',
    status: outboundUp(),
    want: ['Outbound access: 10.244.0.0/16, 10.96.0.0/16 routed into tpts0', 'Cluster DNS: names in cluster.local, shop'],
  },
  {
    name: 'up with never-proxied subnets',
    status: outboundUp({ neverProxied: ['10.96.4.0/24'] }),
    want: ['Outbound access: 10.244.0.0/16, 10.96.0.0/16 routed into tpts0', 'Never proxied: 10.96.4.0/24', 'Cluster DNS: names in cluster.local, shop'],
  },
  { name: 'failed, with the error', status: outboundUp({ state: 'failed', error: 'the network daemon went away' }), want: ['Outbound access failed: the network daemon went away'] },
  { name: 'failed without an error', status: outboundUp({ state: 'failed', error: '' }), want: ['Outbound access failed: see the daemon log'] },
  { name: 'off', status: outboundUp({ state: 'off' }), want: ['Outbound access: off (intercepts only)'] },
] as const;
for (const c of lines) {
  t.test(`outbound lines: ${c.name}`, (t) => {
    t.same(outboundLines(c.status), c.want);
    t.end();
  });
}

const failures = [
  { name: 'up -> failed', previous: outboundUp(), next: outboundUp({ state: 'failed', error: 'the network daemon went away' }), want: /outbound access failed: the network daemon went away \(intercepts still work; Disconnect and Connect again/ },
  { name: 'nothing yet -> failed (attached to a daemon whose outbound access had failed)', previous: undefined, next: outboundUp({ state: 'failed', error: 'x' }), want: /failed: x/ },
  { name: 'failed -> failed (a later snapshot)', previous: outboundUp({ state: 'failed', error: 'x' }), next: outboundUp({ state: 'failed', error: 'x' }), want: undefined },
  { name: 'up -> up', previous: outboundUp(), next: outboundUp(), want: undefined },
  { name: 'up -> gone (disconnected)', previous: outboundUp(), next: undefined, want: undefined },
  { name: 'off -> off', previous: outboundUp({ state: 'off' }), next: outboundUp({ state: 'off' }), want: undefined },
] as const;
for (const c of failures) {
  t.test(`a failure notification, once: ${c.name}`, (t) => {
    const got = outboundFailureMessage(c.previous, c.next);
    if (c.want === undefined) t.equal(got, undefined);
    else t.match(got, c.want);
    t.end();
  });
}

const missing: ReadonlyArray<{ name: string; lookup: CliLookup; want: RegExp }> = [
  {
    name: 'no CLI on PATH',
    lookup: { want: '0.1.0', setting: undefined, found: undefined, skipped: [] },
    want: /^Connected for intercepts only: outbound access needs the kubectl-telepresence CLI v0\.1\.0 \(for its network daemon\), and there is no kubectl-telepresence on PATH\. Fix: install the CLI v0\.1\.0: npm install -g telepresence-ts@0\.1\.0 or kubectl krew install telepresence .*; then Disconnect and Connect\. Or turn telepresence\.outbound off\.$/,
  },
  {
    name: 'only another version on PATH',
    lookup: { want: '0.1.0', setting: undefined, found: undefined, skipped: [{ path: '/usr/local/bin/kubectl-telepresence', bundle: '/usr/local/lib/node_modules/telepresence-ts/kubectl-telepresence.js', version: '0.0.9' }] },
    want: /and the kubectl-telepresence on PATH is v0\.0\.9 \(\/usr\/local\/bin\/kubectl-telepresence\), and this extension is v0\.1\.0\. Fix: .*kubectl krew upgrade telepresence/,
  },
  {
    name: 'telepresence.cliPath of another version',
    lookup: { want: '0.1.0', setting: '/opt/tp/bin/kubectl-telepresence', found: undefined, skipped: [{ path: '/opt/tp/bin/kubectl-telepresence', bundle: '/opt/tp/kubectl-telepresence.js', version: '0.2.0' }] },
    want: /telepresence\.cliPath names \/opt\/tp\/bin\/kubectl-telepresence, the CLI v0\.2\.0, .*point telepresence\.cliPath at its kubectl-telepresence/,
  },
  {
    name: 'a CLI of this version installed after the daemon started',
    lookup: { want: '0.1.0', setting: undefined, found: { path: '/usr/local/bin/kubectl-telepresence', bundle: '/x/kubectl-telepresence.js', version: '0.1.0' }, skipped: [] },
    want: /^Connected for intercepts only: the daemon started without a kubectl-telepresence CLI .*there is one now \(v0\.1\.0 at \/usr\/local\/bin\/kubectl-telepresence\)\. Disconnect, then Connect, to use it\.$/,
  },
];
for (const c of missing) {
  t.test(`connected without outbound access, the warning says why: ${c.name}`, (t) => {
    t.match(outboundMissingMessage(c.lookup), c.want);
    t.end();
  });
}
