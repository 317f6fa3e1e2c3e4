/**
 * TpError on the gRPC wire: a status whose code follows the error's category and whose trailing
 * metadata carries `tp-error-category`, `tp-error-code` and `tp-error-hint` (see manager.proto).
 * Servers send with `toStatus`; clients rebuild the TpError with `fromServiceError`.
 */
import { Metadata, status as grpcStatus, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { ERROR_CATEGORIES, TpError, categoryForGrpcStatus, grpcStatusFor, toTpError, type ErrorCategory } from './errors.js';

/** Trailing-metadata keys (gRPC metadata keys are lower case). */
export const TP_ERROR_METADATA = {
  category: 'tp-error-category',
  code: 'tp-error-code',
  hint: 'tp-error-hint',
} as const;

/**
 * The status for an error code that the proto promises one for, rather than the category's:
 * NOT_FOUND for an expired session, so that a holder can arrive again on the status alone.
 */
const STATUS_BY_CODE: Readonly<Record<string, grpcStatus>> = {
  'session-expired': grpcStatus.NOT_FOUND,
};

/**
 * Metadata values as printable ASCII, which grpc-js insists on: a hint may name a client
 * "josé@host", and an illegal value throws inside the error path, where it would lose the error
 * (or, in a rejection handler, end the process).
 */
function asciiOnly(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * The status a server sends for anything thrown by a handler: the one encoder of TpErrors on the
 * wire, for the daemons and the in-cluster programs alike.
 */
export function toStatus(err: unknown): Partial<StatusObject> & { code: grpcStatus; details: string; metadata: Metadata } {
  const tp = toTpError(err);
  const metadata = new Metadata();
  metadata.set(TP_ERROR_METADATA.category, tp.category);
  metadata.set(TP_ERROR_METADATA.code, asciiOnly(tp.code));
  if (tp.hint !== undefined) {
    metadata.set(TP_ERROR_METADATA.hint, asciiOnly(tp.hint));
  }
  return { code: STATUS_BY_CODE[tp.code] ?? grpcStatusFor(tp.category), details: tp.message, metadata };
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

function firstString(md: Metadata | undefined, key: string): string | undefined {
  const value = md?.get(key)[0];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Options for statuses that carry no TpError metadata (the peer is not ours, or is unreachable). */
export interface FromStatusOptions {
  /** What an UNAVAILABLE status means to this caller (e.g. "the daemon is not running"). */
  readonly unavailable?: (details: string) => TpError;
}

/**
 * Rebuilds the TpError a server sent. A status without our metadata gets the category of its gRPC
 * code and the code `grpc-<status name>`; branch on `code`, never on the message.
 */
export function fromServiceError(err: unknown, options: FromStatusOptions = {}): TpError {
  if (err instanceof TpError || !isServiceError(err)) {
    return toTpError(err);
  }
  const code = firstString(err.metadata, TP_ERROR_METADATA.code);
  const category = firstString(err.metadata, TP_ERROR_METADATA.category);
  if (code !== undefined && category !== undefined && (ERROR_CATEGORIES as readonly string[]).includes(category)) {
    return new TpError(category as ErrorCategory, code, err.details, {
      hint: firstString(err.metadata, TP_ERROR_METADATA.hint),
      cause: err,
    });
  }
  if (err.code === grpcStatus.UNAVAILABLE && options.unavailable !== undefined) {
    const mapped = options.unavailable(err.details);
    // The status stays underneath, for isTransportFailure.
    return mapped.cause !== undefined ? mapped : new TpError(mapped.category, mapped.code, mapped.message, { hint: mapped.hint, cause: err });
  }
  const name = (grpcStatus[err.code] ?? String(err.code)).toLowerCase().replace(/_/g, '-');
  return new TpError(categoryForGrpcStatus(err.code), `grpc-${name}`, err.details || err.message, { cause: err });
}

/**
 * Whether a failed call never had an answer from the peer: UNAVAILABLE without a TpError in its
 * metadata (a dead channel, a refused or broken connection). A peer's cluster errors also travel
 * as UNAVAILABLE, but with their metadata: those are its answer, and calling again would only
 * redo the work that failed. Takes the ServiceError, or a TpError rebuilt from one.
 */
export function isTransportFailure(err: unknown): boolean {
  const failure = isServiceError(err) ? err : err instanceof Error && isServiceError(err.cause) ? err.cause : undefined;
  return failure !== undefined && failure.code === grpcStatus.UNAVAILABLE && firstString(failure.metadata, TP_ERROR_METADATA.code) === undefined;
}

/** True when a failed call ended with this gRPC status code. */
export function hasGrpcStatus(err: unknown, code: grpcStatus): boolean {
  return isServiceError(err) && err.code === code;
}
