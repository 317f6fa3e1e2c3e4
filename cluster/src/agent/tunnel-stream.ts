import type { TunnelMessage, TunnelOpen } from '@telepresence-ts/proto/manager/v1';
import { Duplex } from 'node:stream';

/**
 * The part of a grpc-js `ClientDuplexStream<TunnelMessage, TunnelMessage>` a tunnel uses; tests
 * may pass any object-mode duplex that behaves like one.
 */
export interface TunnelCall {
  write(msg: TunnelMessage): boolean;
  end(): void;
  cancel(): void;
  pause(): unknown;
  resume(): unknown;
  on(event: 'data', listener: (msg: TunnelMessage) => void): unknown;
  on(event: 'end' | 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** A tunnel's peer failed the connection (a TunnelClose with an error, or the stream ended early). */
export class TunnelError extends Error {
  override readonly name = 'TunnelError';
}

/**
 * One Tunnel stream (manager.proto) as a byte stream, so that the forwarder splices it with the
 * accepted socket exactly as it splices a socket to the app.
 *
 * Writing sends `data` messages (backpressure: a write completes when the call's buffer has room);
 * ending sends `close` (a half-close: the peer sees EOF and may still answer). A received `data`
 * is read (the call is paused while this stream's reader is full); a received `close` ends the
 * readable side, or destroys this stream when it carries an error. The call's own request stream
 * is ended only once both sides have closed, because the manager takes the end of a stream as the
 * end of the whole pair. Destroying this stream early cancels the call.
 */
export class TunnelStream extends Duplex {
  readonly #call: TunnelCall;
  #sentClose = false;
  #gotClose = false;

  constructor(call: TunnelCall, open: TunnelOpen) {
    super({ allowHalfOpen: true });
    this.#call = call;
    call.on('data', (msg) => this.#receive(msg));
    call.on('end', () => {
      if (this.#sentClose && this.#gotClose) return;
      if (this.#gotClose) {
        // The peer closed and then ended the pair (the manager ends it when either stream ends):
        // nothing we write can arrive any more. Deliver what was received, then close.
        if (this.readableEnded) this.destroy();
        else this.once('end', () => this.destroy());
        return;
      }
      this.destroy(new TunnelError('the manager ended the tunnel before the other end closed'));
    });
    call.on('error', (err) => this.destroy(err));
    call.write({ open });
  }

  #receive(msg: TunnelMessage): void {
    if (this.#gotClose || this.destroyed) return;
    if (msg.data !== undefined) {
      if (msg.data.length > 0 && !this.push(msg.data)) this.#call.pause();
    } else if (msg.close !== undefined) {
      if (msg.close.error !== '') {
        this.destroy(new TunnelError(`the other end failed the connection: ${msg.close.error}`));
        return;
      }
      this.#gotClose = true;
      this.push(null);
      this.#endCallWhenClosed();
    }
    // An `open` from the manager is not part of v1; ignoring it keeps the tunnel usable.
  }

  #endCallWhenClosed(): void {
    if (this.#sentClose && this.#gotClose) this.#call.end();
  }

  override _read(): void {
    this.#call.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#call.write({ data: chunk })) {
      callback();
    } else {
      this.#call.once('drain', () => callback());
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#sentClose = true;
    this.#call.write({ close: { error: '' } });
    this.#endCallWhenClosed();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A clean end already ended the call; anything else must not leave it open on the manager.
    if (!(this.#sentClose && this.#gotClose)) this.#call.cancel();
    callback(error);
  }
}
