import t from 'tap';
import {
  ERROR_CATEGORIES,
  GRPC_STATUS,
  TpError,
  categoryForGrpcStatus,
  exitCodeFor,
  formatTpError,
  grpcStatusFor,
  isTpError,
  shouldPointToLogs,
  toTpError,
  type ErrorCategory,
} from '../src/errors.js';

t.test('TpError carries category, code, message and hint', (t) => {
  const cause = new Error('socket hang up');
  const err = new TpError('cluster', 'manager-unreachable', 'cannot reach the traffic-manager', {
    hint: 'run `kubectl telepresence connect` again',
    cause,
  });
  t.ok(err instanceof Error);
  t.equal(err.name, 'TpError');
  t.equal(err.category, 'cluster');
  t.equal(err.code, 'manager-unreachable');
  t.equal(err.message, 'cannot reach the traffic-manager');
  t.equal(err.hint, 'run `kubectl telepresence connect` again');
  t.equal(err.cause, cause);
  t.end();
});

t.test('a TpError without options has no hint and no cause', (t) => {
  const err = new TpError('user', 'bad-flag', 'bad flag');
  t.equal(err.hint, undefined);
  t.notOk('cause' in err && err.cause !== undefined);
  t.end();
});

const table: ReadonlyArray<{ category: ErrorCategory; exit: number; grpc: number; logs: boolean }> = [
  { category: 'user', exit: 2, grpc: GRPC_STATUS.INVALID_ARGUMENT, logs: false },
  { category: 'config', exit: 3, grpc: GRPC_STATUS.FAILED_PRECONDITION, logs: false },
  { category: 'cluster', exit: 4, grpc: GRPC_STATUS.UNAVAILABLE, logs: false },
  { category: 'internal', exit: 5, grpc: GRPC_STATUS.INTERNAL, logs: true },
];

for (const row of table) {
  t.test(`category ${row.category}`, (t) => {
    t.equal(exitCodeFor(row.category), row.exit, 'exit code');
    t.equal(grpcStatusFor(row.category), row.grpc, 'gRPC status');
    t.equal(categoryForGrpcStatus(row.grpc), row.category, 'gRPC status maps back');
    t.equal(shouldPointToLogs(row.category), row.logs, 'points to logs');
    t.end();
  });
}

t.test('the table covers every category and exit codes are distinct and not 0 or 1', (t) => {
  t.same(table.map((r) => r.category), ERROR_CATEGORIES);
  const codes = ERROR_CATEGORIES.map(exitCodeFor);
  t.equal(new Set(codes).size, codes.length);
  t.notOk(codes.includes(0) || codes.includes(1));
  t.end();
});

t.test('unknown gRPC codes are cluster errors', (t) => {
  t.equal(categoryForGrpcStatus(GRPC_STATUS.OK), 'cluster');
  t.equal(categoryForGrpcStatus(4 /* DEADLINE_EXCEEDED */), 'cluster');
  t.end();
});

t.test('toTpError', (t) => {
  const tp = new TpError('user', 'x', 'y');
  t.equal(toTpError(tp), tp, 'a TpError passes through');
  const wrapped = toTpError(new RangeError('boom'));
  t.ok(isTpError(wrapped));
  t.equal(wrapped.category, 'internal');
  t.equal(wrapped.code, 'unexpected');
  t.equal(wrapped.message, 'boom');
  t.equal(toTpError('plain string').message, 'plain string');
  t.notOk(isTpError(new Error('x')));
  t.end();
});

t.test('formatTpError', (t) => {
  t.equal(
    formatTpError(new TpError('user', 'bad-output', 'unknown output format "yaml"', { hint: 'use --output json' })),
    'telepresence: unknown output format "yaml"\nhint: use --output json',
  );
  t.equal(formatTpError(new TpError('cluster', 'down', 'cluster is down')), 'telepresence: cluster is down');
  t.equal(
    formatTpError(new TpError('internal', 'bug', 'nil pointer')),
    'telepresence: nil pointer\nhint: see the logs for details',
  );
  t.equal(formatTpError(new TpError('config', 'env', 'bad env'), 'traffic-agent'), 'traffic-agent: bad env', 'program prefix');
  t.end();
});
