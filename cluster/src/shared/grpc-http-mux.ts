import { ServerCredentials, type Server as GrpcServer } from '@grpc/grpc-js';
import { HEALTHZ_PATH } from '@telepresence-ts/core/contracts';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

/** The first bytes of every HTTP/2 connection (RFC 9113 §3.4): gRPC always starts with them. */
const HTTP2_PREFACE_START = Buffer.from('PRI');

/** A port serving gRPC and the kubelet's `GET /healthz` together. */
export interface MuxListener {
  readonly port: number;
  close(): Promise<void>;
}

/** Longest HTTP/1 request head we read before giving up on a probe. */
const MAX_HEAD_BYTES = 8192;

/**
 * Answers one HTTP/1 request from its head, then closes. Written by hand rather than with
 * node:http because the http server reads a socket's handle directly and would miss the bytes
 * already read to tell the protocols apart; a probe needs no more than this.
 */
function answerHttp1(socket: Socket, head: string, isHealthy: () => boolean): void {
  const [method = '', target = '/'] = head.split('\r\n', 1)[0]?.split(' ') ?? [];
  const path = target.split('?')[0];
  let code = 200;
  let text = 'OK';
  let body = 'ok\n';
  const extra: string[] = [];
  if (path !== HEALTHZ_PATH) [code, text, body] = [404, 'Not Found', 'not found\n'];
  else if (method !== 'GET' && method !== 'HEAD') {
    [code, text, body] = [405, 'Method Not Allowed', 'method not allowed\n'];
    extra.push('allow: GET, HEAD');
  } else if (!isHealthy()) [code, text, body] = [503, 'Service Unavailable', 'stopping\n'];
  const lines = [`HTTP/1.1 ${code} ${text}`, 'content-type: text/plain', `content-length: ${Buffer.byteLength(body)}`, 'connection: close', ...extra];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${method === 'HEAD' ? '' : body}`);
}

/**
 * Listens on one port for both gRPC (HTTP/2, handed to the grpc-js server through its connection
 * injector) and HTTP/1.1 `GET /healthz` for the kubelet's probes. One port keeps the manifests
 * simple: the Service, the probes and the port-forward all name the same container port.
 * Connections are told apart by their first three bytes: HTTP/2's preface starts with `PRI`, which
 * no HTTP/1 method does.
 */
export async function listenGrpcAndHealth(grpc: GrpcServer, port: number, host: string, isHealthy: () => boolean = () => true): Promise<MuxListener> {
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Tunnel data is request/response traffic: Nagle's delay would add to every round trip.
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HTTP2_PREFACE_START.length) return;
      if (head.subarray(0, HTTP2_PREFACE_START.length).equals(HTTP2_PREFACE_START)) {
        socket.off('data', onData);
        socket.pause();
        socket.unshift(head);
        injector.injectConnection(socket);
        return;
      }
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.off('data', onData);
        answerHttp1(socket, head.subarray(0, end).toString('latin1'), isHealthy);
      } else if (head.length > MAX_HEAD_BYTES) {
        socket.destroy();
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        injector.destroy();
        for (const s of sockets) s.destroy();
      }),
  };
}
