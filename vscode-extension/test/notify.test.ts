import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import { OPEN_SETTINGS, RETRY, SHOW_LOGS, lostInterceptMessages, reportError } from '../src/notify.js';
import { OUTBOUND_SETTINGS_QUERY } from '../src/outbound.js';
import { FakeHost } from './fixtures/fake-host.js';

const cases = [
  { category: 'user', level: 'warning', actions: [SHOW_LOGS] },
  { category: 'config', level: 'error', actions: [SHOW_LOGS] },
  { category: 'cluster', level: 'error', actions: [RETRY, SHOW_LOGS] },
  { category: 'internal', level: 'error', actions: [RETRY, SHOW_LOGS] },
] as const;
for (const c of cases) {
  t.test(`a ${c.category} error is a ${c.level} with ${c.actions.join(' and ')}`, async (t) => {
    const host = new FakeHost();
    await reportError(host, 'Cannot connect', new TpError(c.category, 'x', 'it broke', { hint: 'do this' }), () => Promise.resolve());
    t.same(host.messages, [{ level: c.level, text: 'Cannot connect: it broke (do this)', actions: c.actions }]);
    t.match(host.logs[0], `[${c.category}/x] it broke; hint: do this`);
  });
}

t.test('Show Logs opens the log; Retry runs the retry', async (t) => {
  const host = new FakeHost();
  host.choices = [SHOW_LOGS, RETRY];
  let retries = 0;
  const retry = (): Promise<void> => {
    retries++;
    return Promise.resolve();
  };
  await reportError(host, 'Cannot connect', new TpError('cluster', 'x', 'down'), retry);
  t.equal(host.logShown, 1);
  t.equal(retries, 0);
  await reportError(host, 'Cannot connect', new TpError('cluster', 'x', 'down'), retry);
  t.equal(retries, 1);
});

t.test('anything thrown that is not a TpError is an internal error', async (t) => {
  const host = new FakeHost();
  await reportError(host, 'Cannot intercept', new Error('boom'));
  t.same(host.messages, [{ level: 'error', text: 'Cannot intercept: boom', actions: [SHOW_LOGS] }]);
});

const refusals = [
  {
    code: 'subnet-conflict',
    category: 'user',
    level: 'warning',
    message: "the cluster's pod subnet 10.244.0.0/16 overlaps this workstation's route 10.244.0.0/16 (dev cni0)",
    hint: 'pass --never-proxy 10.244.0.0/16 to leave those addresses to cni0, or connect with --outbound=false for intercepts only',
    setting: /; in VS Code: add this workstation's route to telepresence\.neverProxy, or turn telepresence\.outbound off for intercepts only\)$/,
  },
  {
    code: 'needs-root',
    category: 'config',
    level: 'error',
    message: 'outbound access needs root for its network device, routes and DNS redirect',
    hint: 'run `sudo /opt/tp/kubectl-telepresence network-daemon --owner 1000`, then connect again',
    setting: /; in VS Code: turn telepresence\.outbound off for intercepts only\)$/,
  },
] as const;
for (const c of refusals) {
  t.test(`a connect refused for ${c.code} shows the error, its hint and the setting, and offers the settings`, async (t) => {
    const host = new FakeHost();
    host.choices = [OPEN_SETTINGS];
    await reportError(host, 'Cannot connect', new TpError(c.category, c.code, c.message, { hint: c.hint }), () => Promise.resolve());
    t.equal(host.messages.length, 1);
    const shown = host.messages[0];
    t.equal(shown?.level, c.level);
    t.ok(shown?.text.startsWith(`Cannot connect: ${c.message} (${c.hint}`), 'the message and the daemon\'s hint, as for any error');
    t.match(shown?.text, c.setting);
    t.same(shown?.actions, [OPEN_SETTINGS, SHOW_LOGS], 'no Retry: the same connect would be refused again');
    t.same(host.settingsOpened, [OUTBOUND_SETTINGS_QUERY], "Open Settings shows the extension's settings");
  });
}

t.test('each intercept newly reported lost is one warning, with its reason, once', async (t) => {
  const a = { name: 'orders-shop', reason: 'deployment orders not found in namespace shop' };
  const b = { name: 'web-shop', reason: 'no pod of deployment web' };
  t.strictSame(lostInterceptMessages([], []), []);
  const first = lostInterceptMessages([], [a]);
  t.equal(first.length, 1);
  t.match(first[0], /intercept orders-shop was lost when the traffic-manager restarted and could not be restored: deployment orders not found in namespace shop/);
  t.strictSame(
    lostInterceptMessages([a], [a, b]).map((m) => m.includes('web-shop')),
    [true],
    'only the new loss',
  );
  t.strictSame(lostInterceptMessages([a, b], [a, b]), [], 'nothing again');
});
