/**
 * The client end of one intercepted connection: dial the intercept's local port, open a manager
 * Tunnel, and pipe both ways with backpressure (a full socket pauses the stream and vice versa) and
 * half-close (`close` from the manager ends our writes to the socket; the socket's EOF becomes our
 * `close`). See the Tunnels section of manager.proto.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { DialRequest, TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { connectLocal, describeLocalDialError, LOCAL_HOST } from './local-dial.js';
import type { Logger } from './logger.js';

/** Opens the Tunnel stream (the manager client's `tunnel()`). */
export type OpenTunnel = () => ClientDuplexStream<TunnelMessage, TunnelMessage>;


/** Runs one tunnel; resolves when both directions are done. */
export function runTunnel(openTunnel: OpenTunnel, sessionId: string, dial: DialRequest, log: Logger): Promise<void> {
  const tag = `tunnel ${dial.connectionId} (${dial.source} -> ${LOCAL_HOST}:${dial.localPort})`;
  const call = openTunnel();
  call.write({ open: { sessionId, connectionId: dial.connectionId, interceptId: dial.interceptId, protocol: '', destination: '', containerPort: 0 } });
  // allowHalfOpen: the app may finish sending before it has read everything (and vice versa).
  const socket = connectLocal(dial.localPort, { allowHalfOpen: true, noDelay: true });
  let sentClose = false;
  let receivedClose = false;
  let callDone = false;

  const endCall = (): void => {
    if (!callDone) {
      callDone = true;
      call.end();
    }
  };
  const sendClose = (error: string): void => {
    if (!sentClose && !callDone) {
      sentClose = true;
      call.write({ close: { error } });
    }
    if (receivedClose || error !== '') {
      endCall();
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (!call.write({ data: chunk })) {
      socket.pause();
      call.once('drain', () => socket.resume());
    }
  });
  socket.on('end', () => sendClose(''));
  socket.on('error', (err) => {
    const problem = describeLocalDialError(err, dial.localPort);
    log('warn', `${tag}: ${problem}`);
    sendClose(problem);
    socket.destroy();
  });

  call.on('data', (msg: TunnelMessage) => {
    if (msg.data !== undefined) {
      if (!socket.write(msg.data)) {
        call.pause();
        socket.once('drain', () => call.resume());
      }
    } else if (msg.close !== undefined) {
      receivedClose = true;
      if (msg.close.error !== '') {
        log('info', `${tag}: closed by the peer: ${msg.close.error}`);
        socket.destroy();
      } else {
        socket.end();
      }
      if (sentClose) {
        endCall();
      }
    }
  });

  return new Promise<void>((resolve) => {
    call.on('error', (err: Error) => {
      // CANCELLED after our own end is the normal finish of a bidi stream on some paths.
      if (!callDone) {
        log('warn', `${tag}: ${err.message}`);
      }
      callDone = true;
      socket.destroy();
      resolve();
    });
    call.on('end', () => {
      // The manager ended the pair: flush what we have and stop.
      socket.end();
      endCall();
      resolve();
    });
    call.on('status', () => resolve());
  });
}
