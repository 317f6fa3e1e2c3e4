/**
 * TpError on the wire, server side, for the in-cluster programs: core's `wire-errors` encoder
 * (`toStatus`: the status per category or code, `tp-error-*` metadata made ASCII) in the shape a
 * grpc-js handler passes to its callback or emits on its stream.
 */
import type { Metadata, ServerErrorResponse, status } from '@grpc/grpc-js';
import { toStatus } from '@telepresence-ts/core/wire-errors';

export { fromServiceError } from '@telepresence-ts/core/wire-errors';

/** Anything thrown by a handler as a grpc-js error (anything not a TpError becomes an `internal` one). */
export function toServiceError(thrown: unknown): ServerErrorResponse & { code: status; details: string; metadata: Metadata } {
  const s = toStatus(thrown);
  return { name: 'TpError', message: s.details, code: s.code, details: s.details, metadata: s.metadata };
}
