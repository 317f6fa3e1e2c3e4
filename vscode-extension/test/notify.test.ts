import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import { RETRY, SHOW_LOGS, reportError } from '../src/notify.js';
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
