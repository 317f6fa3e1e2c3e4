/**
 * The Network service's gRPC edge: maps each RPC onto the NetworkDaemon centre and every thrown
 * error onto a status with tp-error-* trailing metadata. An Outbound call lasts as long as the
 * outbound access it brought up: when the caller cancels or goes away, the access goes too.
 */
import type { Server, ServerWritableStream } from '@grpc/grpc-js';
import { NetworkService, type NetworkServer, type OutboundConfig, type OutboundEvent } from '@telepresence-ts/proto/network/v1';
import { toStatus } from '../wire-errors.js';
import type { Logger } from '../daemon/logger.js';
import { quitHandler } from '../daemon/server.js';
import type { NetworkDaemon } from './network-daemon.js';

/** Registers the Network service; `onQuit` runs after Quit has been answered. */
export function addNetworkToServer(server: Server, daemon: NetworkDaemon, log: Logger, onQuit: () => void): void {
  const impl: NetworkServer = {
    version: (_call, callback) => callback(null, daemon.version()),
    outbound: (call: ServerWritableStream<OutboundConfig, OutboundEvent>) => {
      const ended = new AbortController();
      // grpc-js emits 'cancelled' when the client cancels, its deadline passes or its connection
      // drops (the caller's process died): every way the call can end except our own end().
      call.on('cancelled', () => ended.abort());
      call.on('close', () => ended.abort());
      daemon
        .outbound(
          call.request,
          {
            progress: (line) => {
              if (!call.cancelled) call.write({ progress: line, ready: undefined });
            },
            ready: (ready) => {
              if (!call.cancelled) call.write({ progress: undefined, ready });
            },
          },
          ended.signal,
        )
        .then(
          // Ended by Quit or shutdown: the caller sees OK and knows access is down.
          () => {
            if (!call.cancelled) call.end();
          },
          (err: unknown) => {
            const status = toStatus(err);
            log('info', `Outbound failed: ${status.details ?? ''}`);
            // grpc-js turns an 'error' event on a server stream into the call's final status.
            if (!call.cancelled) call.emit('error', status);
          },
        );
    },
    quit: quitHandler(() => daemon.shutdown(), onQuit),
  };
  server.addService(NetworkService, impl);
}
