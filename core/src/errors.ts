/**
 * The one error type of telepresence-ts (Telepresence's `errcat`). Its category, never its message
 * text, decides the CLI exit code, whether to point at the logs, the gRPC status on the wire and
 * the VS Code notification level.
 */

/**
 * - `user`: the user asked for something impossible or malformed; they can fix it by typing
 *   something else.
 * - `config`: a configuration file, flag default or environment variable is wrong.
 * - `cluster`: the cluster (or the network to it) refused or failed; retrying may help.
 * - `internal`: a bug of ours; the logs have the details.
 */
export type ErrorCategory = 'user' | 'config' | 'cluster' | 'internal';

/** Every category, in a stable order (for tables and exhaustive tests). */
export const ERROR_CATEGORIES: readonly ErrorCategory[] = ['user', 'config', 'cluster', 'internal'];

export interface TpErrorOptions {
  /** What the user can do about it, phrased as an instruction ("run `kubectl telepresence connect`"). */
  readonly hint?: string | undefined;
  /** The lower-level error this one wraps, kept for the logs. */
  readonly cause?: unknown;
}

/**
 * An error with a category and a stable machine-readable code.
 *
 * `code` is a short kebab-case identifier (`bad-flag`, `manager-not-found`) that tests and
 * callers branch on; `message` is for people and may change wording freely.
 */
export class TpError extends Error {
  override readonly name = 'TpError';
  readonly category: ErrorCategory;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(category: ErrorCategory, code: string, message: string, options: TpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.category = category;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Narrows `unknown` (what `catch` gives) to a TpError. */
export function isTpError(err: unknown): err is TpError {
  return err instanceof TpError;
}

/**
 * Wraps anything thrown into a TpError. A TpError passes through unchanged; anything else is a bug
 * we did not anticipate, so it becomes `internal` with the original kept as `cause`.
 */
export function toTpError(err: unknown): TpError {
  if (isTpError(err)) {
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new TpError('internal', 'unexpected', message, { cause: err });
}

/**
 * CLI exit codes per category. 0 is success and 1 is left to Node itself (an uncaught exception),
 * so a script can tell "we reported an error" from "we crashed".
 */
export const EXIT_CODES: Readonly<Record<ErrorCategory, number>> = {
  user: 2,
  config: 3,
  cluster: 4,
  internal: 5,
};

/** The process exit code the CLI uses for an error of this category. */
export function exitCodeFor(category: ErrorCategory): number {
  return EXIT_CODES[category];
}

/**
 * The gRPC status codes we use, as numbers (from grpc/doc/statuscodes.md) so that core needs no
 * grpc import. Servers pass them to grpc-js as `status`.
 */
export const GRPC_STATUS = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export type GrpcStatusCode = (typeof GRPC_STATUS)[keyof typeof GRPC_STATUS];

const CATEGORY_TO_GRPC: Readonly<Record<ErrorCategory, GrpcStatusCode>> = {
  user: GRPC_STATUS.INVALID_ARGUMENT,
  config: GRPC_STATUS.FAILED_PRECONDITION,
  cluster: GRPC_STATUS.UNAVAILABLE,
  internal: GRPC_STATUS.INTERNAL,
};

/** The gRPC status a server sends for an error of this category. */
export function grpcStatusFor(category: ErrorCategory): GrpcStatusCode {
  return CATEGORY_TO_GRPC[category];
}

/**
 * The reverse mapping, for a client receiving a failed call. Unknown codes are `cluster`
 * errors: something between us and the peer went wrong, and it was not our input.
 */
export function categoryForGrpcStatus(code: number): ErrorCategory {
  switch (code) {
    case GRPC_STATUS.INVALID_ARGUMENT:
      return 'user';
    case GRPC_STATUS.FAILED_PRECONDITION:
      return 'config';
    case GRPC_STATUS.INTERNAL:
      return 'internal';
    default:
      return 'cluster';
  }
}

/** Only internal errors send the user to the logs; the others say what to do in their hint. */
export function shouldPointToLogs(category: ErrorCategory): boolean {
  return category === 'internal';
}

/**
 * The one- or two-line rendering printed on stderr: `<program>: <message>` and, if there is one,
 * `hint: <hint>`. Internal errors without a hint send the reader to the logs.
 */
export function formatTpError(err: TpError, program = 'telepresence'): string {
  const lines = [`${program}: ${err.message}`];
  const hint = err.hint ?? (shouldPointToLogs(err.category) ? 'see the logs for details' : undefined);
  if (hint !== undefined) {
    lines.push(`hint: ${hint}`);
  }
  return lines.join('\n');
}
