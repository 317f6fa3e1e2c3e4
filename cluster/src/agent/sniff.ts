import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** What the first bytes of a connection say it speaks. */
export type Protocol = 'http1' | 'h2c' | 'other';

/** The HTTP/2 connection preface a client with prior knowledge of h2c starts with (RFC 9113 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * The longest method token we wait for. Registered methods are at most 17 characters
 * (VERSION-CONTROL, BASELINE-CONTROL); anything longer than 20 upper-case letters is not HTTP.
 */
const MAX_METHOD = 20;
/**
 * Empty lines (CRLF) a request line may follow (RFC 9112 2.2: a server should ignore at least
 * one, as node's parser does); past this many the connection is not taken for HTTP.
 */
const MAX_EMPTY_LINES = 4;

/**
 * Decides from the first bytes of a connection what it speaks, or `undefined` when they are not
 * enough yet. HTTP/1.x starts with a method token and a space; h2c with prior knowledge starts
 * with the preface (whose `PRI` would otherwise pass for a method). Everything else is `other`.
 */
export function sniffProtocol(head: Buffer): Protocol | undefined {
  const n = Math.min(head.length, H2_PREFACE.length);
  if (head.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
    return head.length >= H2_PREFACE.length ? 'h2c' : undefined;
  }
  // Empty lines before the request line are HTTP/1 too (the proxy skips them).
  let start = 0;
  for (; head[start] === 0x0d; start += 2) {
    if (start + 1 >= head.length) return undefined;
    if (head[start + 1] !== 0x0a || start / 2 >= MAX_EMPTY_LINES) return 'other';
  }
  for (let i = start; i < head.length && i - start <= MAX_METHOD; i++) {
    const c = head[i]!;
    if (c === 0x20) return i > start ? 'http1' : 'other';
    // Methods are tokens; in practice upper-case letters and '-' (RFC 9110 9.1).
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d)) return 'other';
  }
  return head.length - start > MAX_METHOD ? 'other' : undefined;
}

/**
 * Reads from `socket` until `sniffProtocol` decides, and resolves with the decision and the bytes
 * read (which the caller must replay). A connection that ends or fails first resolves as `other`
 * with what it sent, so that the app sees exactly what it would have seen without the agent.
 */
export function readProtocol(socket: Socket): Promise<{ protocol: Protocol; head: Buffer }> {
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    const done = (protocol: Protocol): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
      resolve({ protocol, head });
    };
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const protocol = sniffProtocol(head);
      if (protocol !== undefined) done(protocol);
    };
    const onEnd = (): void => done('other');
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}

/**
 * A duplex over `socket` whose readable side first yields `head` (bytes already read from the
 * socket) and then the socket's data. node:http2 servers read a net.Socket through its native
 * handle, so bytes put back with `unshift` would never reach them; a plain duplex is read through
 * its stream interface instead.
 */
export function replaying(socket: Socket, head: Buffer): Duplex {
  const wrapper = new Duplex({
    allowHalfOpen: true,
    read: () => {
      socket.resume();
    },
    write: (chunk: Buffer, _encoding, callback) => {
      socket.write(chunk, (err) => callback(err));
    },
    final: (callback) => {
      socket.end();
      callback();
    },
    destroy: (err, callback) => {
      socket.destroy();
      callback(err);
    },
  });
  if (head.length > 0) wrapper.push(head);
  socket.on('data', (chunk: Buffer) => {
    if (!wrapper.push(chunk)) socket.pause();
  });
  socket.on('end', () => wrapper.push(null));
  socket.on('error', (err) => wrapper.destroy(err));
  socket.on('close', () => wrapper.destroy());
  return wrapper;
}
