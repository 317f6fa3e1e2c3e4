/**
 * TpError on the wire, server side, for the in-cluster programs. Core's `wire-errors` defines the
 * contract (status from the category, `tp-error-*` trailing metadata) and the client side
 * (`fromServiceError`, re-exported here); this adds what a server needs on top:
 * - a status per code where the proto promises one (NOT_FOUND for an expired session, so that a
 *   holder can re-arrive on the status alone);
 * - metadata values made printable ASCII, which grpc-js insists on (a hint may name a client
 *   "josé@host"): an illegal value would throw inside the error path and lose the error.
 */
import { Metadata, status, type ServerErrorResponse } from '@grpc/grpc-js';
import { grpcStatusFor, toTpError } from '@telepresence-ts/core/errors';
import { TP_ERROR_METADATA } from '@telepresence-ts/core/wire-errors';

export { fromServiceError } from '@telepresence-ts/core/wire-errors';

const STATUS_BY_CODE: Readonly<Record<string, status>> = {
  'session-expired': status.NOT_FOUND,
};

function asciiOnly(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * Anything thrown by a handler as the error a grpc-js handler passes to its callback or emits on
 * its stream (anything not a TpError becomes an `internal` one).
 */
export function toServiceError(thrown: unknown): ServerErrorResponse & { code: status; details: string; metadata: Metadata } {
  const err = toTpError(thrown);
  const metadata = new Metadata();
  metadata.set(TP_ERROR_METADATA.category, err.category);
  metadata.set(TP_ERROR_METADATA.code, asciiOnly(err.code));
  if (err.hint !== undefined) metadata.set(TP_ERROR_METADATA.hint, asciiOnly(err.hint));
  const code: status = STATUS_BY_CODE[err.code] ?? grpcStatusFor(err.category);
  return { name: 'TpError', message: err.message, code, details: err.message, metadata };
}
