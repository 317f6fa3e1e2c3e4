import { Metadata, status } from '@grpc/grpc-js';
import t from 'tap';
import { TpError } from '../src/errors.js';
import { TP_ERROR_METADATA, fromServiceError, isTransportFailure, toStatus } from '../src/wire-errors.js';

/** What a grpc-js client receives for a status the server sent. */
function received(s: ReturnType<typeof toStatus>): Error {
  return Object.assign(new Error(`${s.code ?? 0} ${s.details ?? ''}`), { code: s.code, details: s.details, metadata: s.metadata });
}

const cases: ReadonlyArray<{ name: string; err: TpError; grpc: number }> = [
  { name: 'user', err: new TpError('user', 'ambiguous-port', 'echo has ports http and grpc', { hint: 'use --port 8080:http' }), grpc: status.INVALID_ARGUMENT },
  { name: 'config', err: new TpError('config', 'version-mismatch', 'v1 vs v2', { hint: 'run install' }), grpc: status.FAILED_PRECONDITION },
  { name: 'cluster', err: new TpError('cluster', 'cluster-unreachable', 'cannot reach'), grpc: status.UNAVAILABLE },
  { name: 'internal', err: new TpError('internal', 'unexpected', 'bug'), grpc: status.INTERNAL },
];

for (const c of cases) {
  t.test(`a ${c.name} TpError survives the wire`, (t) => {
    const s = toStatus(c.err);
    t.equal(s.code, c.grpc);
    t.equal(s.details, c.err.message);
    t.equal(s.metadata?.get(TP_ERROR_METADATA.code)[0], c.err.code);
    const back = fromServiceError(received(s));
    t.match(back, { category: c.err.category, code: c.err.code, message: c.err.message, hint: c.err.hint });
    t.end();
  });
}

t.test('a plain Error is internal on the wire', (t) => {
  const s = toStatus(new Error('boom'));
  t.equal(s.code, status.INTERNAL);
  t.equal(s.metadata?.get(TP_ERROR_METADATA.code)[0], 'unexpected');
  t.end();
});

t.test('a status without our metadata gets its category from the gRPC code', (t) => {
  const err = Object.assign(new Error('x'), { code: status.NOT_FOUND, details: 'session expired', metadata: new Metadata() });
  t.match(fromServiceError(err), { category: 'cluster', code: 'grpc-not-found', message: 'session expired' });
  const unavailable = Object.assign(new Error('x'), { code: status.UNAVAILABLE, details: 'No connection established', metadata: new Metadata() });
  const mapped = fromServiceError(unavailable, { unavailable: (d) => new TpError('cluster', 'daemon-unreachable', d) });
  t.match(mapped, { code: 'daemon-unreachable', message: 'No connection established' });
  t.end();
});

t.test('metadata with an unknown category is not trusted', (t) => {
  const md = new Metadata();
  md.set(TP_ERROR_METADATA.category, 'weird');
  md.set(TP_ERROR_METADATA.code, 'x');
  const err = Object.assign(new Error('x'), { code: status.INVALID_ARGUMENT, details: 'd', metadata: md });
  t.match(fromServiceError(err), { category: 'user', code: 'grpc-invalid-argument' });
  t.end();
});

t.test('a hint that is not ASCII goes on the wire with its other characters kept, instead of throwing', (t) => {
  const s = toStatus(new TpError('user', 'intercept-taken', 'taken by josé@host', { hint: 'ask josé@host to leave it — or pick another port' }));
  t.equal(s.details, 'taken by josé@host', 'the message (grpc-message, percent-encoded) keeps every character');
  t.equal(s.metadata.get(TP_ERROR_METADATA.hint)[0], 'ask jos?@host to leave it ? or pick another port');
  t.match(fromServiceError(received(s)), { code: 'intercept-taken', hint: /^ask jos\?@host/ });
  t.end();
});

t.test('an expired session is NOT_FOUND whatever its category says, as the proto promises', (t) => {
  t.equal(toStatus(new TpError('cluster', 'session-expired', 'expired')).code, status.NOT_FOUND);
  t.end();
});

t.test("a transport failure is told from a peer's answer that travels with the same status", (t) => {
  const dead = Object.assign(new Error('x'), { code: status.UNAVAILABLE, details: 'No connection established', metadata: new Metadata() });
  t.ok(isTransportFailure(dead), 'UNAVAILABLE with nothing from the peer');
  t.ok(isTransportFailure(fromServiceError(dead)), 'also once rebuilt as a TpError');
  t.ok(isTransportFailure(fromServiceError(dead, { unavailable: (d) => new TpError('cluster', 'manager-unreachable', d) })), 'also once mapped by the caller');
  const answer = received(toStatus(new TpError('cluster', 'agent-not-injected', 'pods were created without the traffic-agent')));
  t.equal((answer as Error & { code: number }).code, status.UNAVAILABLE, "the peer's cluster error has the same status");
  t.notOk(isTransportFailure(answer), 'but it is an answer');
  t.notOk(isTransportFailure(fromServiceError(answer)), 'also once rebuilt');
  t.notOk(isTransportFailure(received(toStatus(new TpError('user', 'bad-flag', 'no')))), 'another status is no transport failure');
  t.notOk(isTransportFailure(new Error('plain')), 'nor is a plain error');
  t.end();
});
