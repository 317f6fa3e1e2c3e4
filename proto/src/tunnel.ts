/**
 * The Tunnel method's messages, encoded and decoded without the copies the generated code makes.
 *
 * A relayed connection's bytes cross the Tunnel as `data` messages. The generated codec copies
 * every payload three times on the way out (into the writer's chunk list, into one array on
 * `finish()`, into a Buffer) and once on the way in, and grpc-js copies each message once more
 * each way. Those short-lived 64 KiB buffers are what made the relay expensive: in the manager,
 * which relays every byte twice, V8's garbage collector (set off by the external memory they
 * take) was a third of the CPU time. Here a `data` message is written with one copy and read
 * with none; `open` and `close`, rare, go through the generated code. The bytes on the wire
 * are the same either way (a `data` message is its tag, the payload's length as a varint, and
 * the payload), so peers using the generated codec interoperate.
 *
 * - `TunnelManagerClient`: the generated client with this codec on its Tunnel method.
 * - `RAW_TUNNEL_SERVICE`: the service definition for a server that passes Tunnel messages on
 *   without reading them (the traffic-manager): its Tunnel handler receives and writes the
 *   encoded messages as Buffers; `rawTunnelKind` tells a `data` message from the others.
 */
import { makeGenericClientConstructor, type handleBidiStreamingCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { ManagerService, TunnelMessage, type ManagerClient, type ManagerServer } from './gen/manager/v1/manager.js';

/** Field 2 (`data`), wire type 2 (length-delimited). */
const DATA_TAG = 0x12;

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/** The encoding of `msg`, the same bytes as `TunnelMessage.encode(msg).finish()`. */
export function encodeTunnelMessage(msg: TunnelMessage): Buffer {
  const data = msg.data;
  if (data !== undefined && msg.open === undefined && msg.close === undefined) {
    const length = data.length;
    const out = Buffer.allocUnsafe(1 + varintSize(length) + length);
    out[0] = DATA_TAG;
    let pos = 1;
    let v = length;
    while (v > 0x7f) {
      out[pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    out[pos++] = v;
    out.set(data, pos);
    return out;
  }
  const bytes = TunnelMessage.encode(msg).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Where the payload starts in a message that is one `data` field and nothing else; undefined
 * for any other message.
 */
function dataOnly(buf: Buffer): number | undefined {
  if (buf.length < 2 || buf[0] !== DATA_TAG) return undefined;
  let length = 0;
  let scale = 1;
  // A length needs at most five varint bytes (grpc-js caps messages far below 2^32).
  for (let pos = 1; pos < buf.length && pos <= 5; pos++) {
    const b = buf[pos] as number;
    length += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return pos + 1 + length === buf.length ? pos + 1 : undefined;
  }
  return undefined;
}

/**
 * Decodes a Tunnel message. A `data` payload is a view of `buf`, not a copy: grpc-js hands each
 * received message over in a Buffer of its own. Throws when `buf` is not a TunnelMessage.
 */
export function decodeTunnelMessage(buf: Buffer): TunnelMessage {
  const start = dataOnly(buf);
  if (start !== undefined) return { open: undefined, data: buf.subarray(start), close: undefined };
  return TunnelMessage.decode(buf);
}

/** decodeTunnelMessage, or undefined where it would throw (bytes from a peer that is not ours). */
export function tryDecodeTunnelMessage(buf: Buffer): TunnelMessage | undefined {
  try {
    return decodeTunnelMessage(buf);
  } catch {
    return undefined;
  }
}

/** What an encoded Tunnel message is, for a relay that passes `data` on unread. */
export function rawTunnelKind(buf: Buffer): 'data' | 'other' {
  return dataOnly(buf) !== undefined ? 'data' : 'other';
}

const tunnelMethod = ManagerService.tunnel;

/** This module's codec, both ways, for a method whose messages are TunnelMessages. */
const FAST_CODEC = {
  requestSerialize: encodeTunnelMessage,
  requestDeserialize: decodeTunnelMessage,
  responseSerialize: encodeTunnelMessage,
  responseDeserialize: decodeTunnelMessage,
} as const;

/**
 * The Manager service with this module's codec on the Tunnel and Outbound methods (Outbound
 * carries TunnelMessages too: one stream per outbound flow).
 */
export const TUNNEL_CODEC_SERVICE = {
  ...ManagerService,
  tunnel: { ...tunnelMethod, ...FAST_CODEC },
  outbound: { ...ManagerService.outbound, ...FAST_CODEC },
} as const;

/** The generated Manager client, but with this module's codec on the Tunnel method. */
export const TunnelManagerClient = makeGenericClientConstructor(TUNNEL_CODEC_SERVICE, 'telepresence.manager.v1.Manager') as unknown as {
  new (...args: ConstructorParameters<typeof ManagerClient>): ManagerClient;
  service: typeof TUNNEL_CODEC_SERVICE;
  serviceName: string;
};

const identity = (value: Buffer): Buffer => value;

/** The Manager service for a server whose Tunnel handler takes and gives encoded messages. */
export const RAW_TUNNEL_SERVICE = {
  ...ManagerService,
  outbound: { ...ManagerService.outbound, ...FAST_CODEC },
  tunnel: {
    ...tunnelMethod,
    requestDeserialize: identity,
    responseSerialize: identity,
  },
} as const;

/** ManagerServer's methods without its index signature, which would swallow them in an Omit. */
type ManagerMethods = { [K in keyof ManagerServer as string extends K ? never : K]: ManagerServer[K] };

/** A server implementation for RAW_TUNNEL_SERVICE. */
export type RawTunnelManagerServer = Omit<ManagerMethods, 'tunnel'> &
  UntypedServiceImplementation & {
    tunnel: handleBidiStreamingCall<Buffer, Buffer>;
  };
