/**
 * The Daemon service's gRPC edge: maps each RPC onto the Daemon centre and every thrown error onto
 * a status with tp-error-* trailing metadata.
 */
import { unlinkSync } from 'node:fs';
import { ServerCredentials, type handleUnaryCall, type Server, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { DaemonService, type DaemonServer, type InterceptEvent, type InterceptRequest, type StateSnapshot, type WatchTrafficRequest } from '@telepresence-ts/proto/daemon/v1';
import type { TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import { DEFAULT_MANAGER_NAMESPACE } from '../contracts.js';
import { toStatus } from '../wire-errors.js';
import type { Daemon } from './daemon.js';
import type { Logger } from './logger.js';

function unaryHandler<Req, Res>(log: Logger, name: string, body: (req: Req) => Promise<Res> | Res) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    Promise.resolve()
      .then(() => body(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          const status = toStatus(err);
          log('info', `${name} failed: ${status.details ?? ''}`);
          callback(status);
        },
      );
  };
}

/** Registers the Daemon service; `onQuit` runs after Quit has been answered. */
export function addDaemonToServer(server: Server, daemon: Daemon, log: Logger, onQuit: () => void): void {
  const impl: DaemonServer = {
    version: unaryHandler(log, 'Version', () => daemon.version()),
    connect: unaryHandler(log, 'Connect', (req) =>
      daemon.connect({
        flags: { kubeconfig: req.kube?.kubeconfig, context: req.kube?.context, namespace: req.kube?.namespace, kubeconfigEnv: req.kube?.kubeconfigEnv },
        managerNamespace: req.managerNamespace !== '' ? req.managerNamespace : DEFAULT_MANAGER_NAMESPACE,
        product: req.product !== '' ? req.product : 'cli',
        outbound: {
          disabled: req.outbound?.disabled ?? false,
          alsoProxy: req.outbound?.alsoProxy ?? [],
          neverProxy: req.outbound?.neverProxy ?? [],
        },
      }),
    ),
    status: unaryHandler(log, 'Status', () => daemon.status()),
    list: unaryHandler(log, 'List', (req) => daemon.list(req.namespace)),
    intercept: (call: ServerWritableStream<InterceptRequest, InterceptEvent>) => {
      const { spec, mount, mountPoint, envFile, envJson, mountAllowOther } = call.request;
      daemon
        .intercept(
          spec ?? { name: '', namespace: '', workloadName: '', workloadKind: '', serviceName: '', servicePort: '', containerName: '', localPort: 0, headers: [], httpPathPrefix: '', httpMethods: [], mode: '', ports: [] },
          (line) => call.write({ progress: line, remote: undefined }),
          { mount, mountPoint, envFile, envJson, mountAllowOther },
        )
        .then(
          (info) => {
            call.write({ intercept: info, remote: daemon.remoteOf(info.spec?.name ?? '') });
            call.end();
          },
          (err: unknown) => {
            const status = toStatus(err);
            log('info', `Intercept failed: ${status.details ?? ''}`);
            // grpc-js turns an 'error' event on a server stream into the call's final status.
            call.emit('error', status);
          },
        );
    },
    leave: unaryHandler(log, 'Leave', async (req) => {
      await daemon.leave(req.name);
      return {};
    }),
    uninstallAgents: unaryHandler(log, 'UninstallAgents', (req) => daemon.uninstallAgents(req)),
    quit: quitHandler(() => daemon.shutdown(), onQuit),
    watchState: (call: ServerWritableStream<unknown, StateSnapshot>) => {
      const unsubscribe = daemon.watchState((snap) => call.write(snap));
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    },
    watchTraffic: (call: ServerWritableStream<WatchTrafficRequest, TrafficEvent>) => {
      let cancel: () => void;
      try {
        cancel = daemon.watchTraffic(call.request, {
          next: (e) => void call.write(e),
          end: (err) => (err === undefined ? call.end() : call.emit('error', toStatus(err))),
        });
      } catch (err: unknown) {
        const s = toStatus(err);
        log('info', `WatchTraffic failed: ${s.details}`);
        call.emit('error', s);
        return;
      }
      call.on('cancelled', cancel);
      call.on('close', cancel);
    },
  };
  server.addService(DaemonService, impl);
}

/**
 * A Quit handler: shuts the centre down, answers (with its error, if any), then calls `onQuit`
 * (which stops the process's server) once the answer is on its way.
 */
export function quitHandler(shutdown: () => Promise<void>, onQuit: () => void): handleUnaryCall<unknown, object> {
  return (_call, callback) => {
    shutdown().then(
      () => {
        callback(null, {});
        setImmediate(onQuit);
      },
      (err: unknown) => {
        callback(toStatus(err));
        setImmediate(onQuit);
      },
    );
  };
}

/** Binds a server to a Unix socket path (or `host:port` for tests) and returns the bound port. */
export function bindServer(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => (err !== null ? reject(err) : resolve(port)));
  });
}

/**
 * Stops a server on a Unix socket and removes the socket file. Long-lived streams (WatchState,
 * an Outbound call whose end is in flight) hold a graceful shutdown open: after a moment, cut them.
 */
export async function closeServer(server: Server, socketPath: string): Promise<void> {
  await new Promise<void>((resolve) => {
    server.tryShutdown(() => resolve());
    setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 1_000).unref();
  });
  try {
    unlinkSync(socketPath);
  } catch {
    // Already gone.
  }
}
