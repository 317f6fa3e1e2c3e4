import type { Server } from '@grpc/grpc-js';
import { TUNNEL_WINDOW_BYTES } from '@telepresence-ts/core/contracts';
import type { Http2Session } from 'node:http2';

/**
 * HTTP/2 flow-control windows for the tunnel's streams, on the manager's side (clients set theirs
 * with TUNNEL_CHANNEL_OPTIONS).
 *
 * HTTP/2 starts every stream and every connection with a 64 KiB receive window, so a sender
 * can have at most 64 KiB in flight per round trip. Between the workstation and the manager
 * the round trip includes a Kubernetes port-forward (about 1-3 ms), which caps a tunnel at
 * 10-20 MB/s however fast the links are. Wider windows lift the cap to what the links carry;
 * memory is not the price, because our tunnels stop reading (and so stop granting window) as
 * soon as the far side pushes back, which bounds what one stream can buffer to its window.
 */
export const STREAM_WINDOW_BYTES = TUNNEL_WINDOW_BYTES;
/** Shared by every stream of one connection. */
export const CONNECTION_WINDOW_BYTES = 16 << 20;

// The parts of grpc-js 1.14's Server and server calls read below. grpc-js has no option for a
// server's receive windows, so these reach into its internals; the unit test of this module
// fails if an upgrade moves them, rather than throughput silently dropping.
interface ServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
}
interface CallInternals {
  call?: { stream?: { session?: Http2Session } };
}

/**
 * Advertises STREAM_WINDOW_BYTES as the initial window of every stream clients open to
 * `server`. Call before the server binds or creates a connection injector. Returns false
 * (and changes nothing) when this grpc-js does not have the expected internals.
 */
export function widenServerStreamWindow(server: Server): boolean {
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  if (options === undefined || typeof options !== 'object') return false;
  options.settings = { ...(options.settings ?? {}), initialWindowSize: STREAM_WINDOW_BYTES };
  return true;
}

const widened = new WeakSet<Http2Session>();

/**
 * Raises the connection-level receive window of the HTTP/2 connection `call` arrived on (once
 * per connection). Returns false when the call does not expose its session.
 */
export function widenConnectionWindow(call: object): boolean {
  const session = (call as CallInternals).call?.stream?.session;
  if (session === undefined || typeof session.setLocalWindowSize !== 'function') return false;
  if (!widened.has(session)) {
    widened.add(session);
    if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
  }
  return true;
}
