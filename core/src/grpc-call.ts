/** Promise wrappers over grpc-js client calls, mapping failures to TpError. */
import type { CallOptions, ClientUnaryCall, Metadata, ServiceError } from '@grpc/grpc-js';
import { Metadata as GrpcMetadata } from '@grpc/grpc-js';
import type { TpError } from './errors.js';
import { fromServiceError, type FromStatusOptions } from './wire-errors.js';

/** A generated client method in its (request, metadata, options, callback) form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a unary method; a failure rejects with the TpError the server sent (or a mapped one). */
export function unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: Partial<CallOptions> & FromStatusOptions = {}): Promise<Res> {
  const { unavailable, ...callOptions } = options;
  return new Promise<Res>((resolve, reject) => {
    method(request, new GrpcMetadata(), callOptions, (error, response) => {
      if (error !== null) {
        reject(fromServiceError(error, { unavailable }));
      } else {
        resolve(response);
      }
    });
  });
}

/** A deadline `ms` from now, for CallOptions. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** Helper for `unavailable` options: a fixed TpError whatever the details. */
export function unavailableAs(make: (details: string) => TpError): FromStatusOptions {
  return { unavailable: make };
}
