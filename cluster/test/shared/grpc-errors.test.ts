import { status } from '@grpc/grpc-js';
import { TpError } from '@telepresence-ts/core/errors';
import t from 'tap';
import { fromServiceError, toServiceError } from '../../src/shared/grpc-errors.js';

t.test('a TpError becomes a status with tp-error-* trailing metadata', (t) => {
  const cases: ReadonlyArray<{ err: unknown; code: status; category: string; errCode: string; hint?: string }> = [
    { err: new TpError('user', 'ambiguous-port', 'pick one', { hint: 'e.g. --port 8080:http' }), code: status.INVALID_ARGUMENT, category: 'user', errCode: 'ambiguous-port', hint: 'e.g. --port 8080:http' },
    { err: new TpError('config', 'forbidden', 'rbac'), code: status.FAILED_PRECONDITION, category: 'config', errCode: 'forbidden' },
    { err: new TpError('cluster', 'agent-timeout', 'slow'), code: status.UNAVAILABLE, category: 'cluster', errCode: 'agent-timeout' },
    { err: new TpError('cluster', 'session-expired', 'gone'), code: status.NOT_FOUND, category: 'cluster', errCode: 'session-expired' },
    { err: new Error('boom'), code: status.INTERNAL, category: 'internal', errCode: 'unexpected' },
  ];
  for (const c of cases) {
    const e = toServiceError(c.err);
    t.equal(e.code, c.code, `${c.errCode}: status`);
    t.equal(e.details, (c.err as Error).message, `${c.errCode}: details`);
    t.strictSame(e.metadata.get('tp-error-category'), [c.category]);
    t.strictSame(e.metadata.get('tp-error-code'), [c.errCode]);
    t.strictSame(e.metadata.get('tp-error-hint'), c.hint === undefined ? [] : [c.hint]);
  }
  t.end();
});

t.test('non-ASCII in a hint cannot break the trailers', (t) => {
  t.strictSame(toServiceError(new TpError('user', 'x', 'm', { hint: 'ask alice’s owner' })).metadata.get('tp-error-hint'), ['ask alice?s owner']);
  t.end();
});

t.test('core’s fromServiceError rebuilds the TpError', (t) => {
  // What a grpc-js client receives: an Error carrying the status fields.
  const back = fromServiceError(Object.assign(new Error('3 INVALID_ARGUMENT: taken'), toServiceError(new TpError('user', 'intercept-conflict', 'taken', { hint: 'leave it' }))));
  t.match(back, { category: 'user', code: 'intercept-conflict', message: 'taken', hint: 'leave it' });
  t.ok(back instanceof TpError);
  const expired = Object.assign(new Error('5 NOT_FOUND: gone'), toServiceError(new TpError('cluster', 'session-expired', 'gone')));
  t.match(fromServiceError(expired), { category: 'cluster', code: 'session-expired' }, 'the code survives a status override');
  t.end();
});
