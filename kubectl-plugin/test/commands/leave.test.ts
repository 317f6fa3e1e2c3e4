import t from 'tap';
import { TpError } from '@telepresence-ts/core';
import { fakeEnv, runCli } from '../fixtures/fake-deps.js';

t.test('leave removes the intercept', async (t) => {
  const env = fakeEnv();
  const res = await runCli(env, ['leave', 'echo-default']);
  t.equal(res.code, 0);
  t.ok(env.daemon.calls.includes('leave echo-default'));
  t.equal(res.stdout, 'Intercept echo-default removed\n');
  t.strictSame(JSON.parse((await runCli(fakeEnv(), ['leave', 'x', '-o', 'json'])).stdout), { left: 'x' });
});

t.test('leave of an unknown intercept is a user error', async (t) => {
  const env = fakeEnv();
  env.daemon.failWith = new TpError('user', 'unknown-intercept', 'there is no intercept named nope', { hint: 'intercepts: echo-default' });
  const res = await runCli(env, ['leave', 'nope']);
  t.equal(res.code, 2);
  t.equal(res.stderr, 'telepresence: there is no intercept named nope\nhint: intercepts: echo-default\n');
});
