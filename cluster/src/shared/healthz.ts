import { HEALTHZ_PATH } from '@telepresence-ts/core/contracts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running health server. */
export interface HealthServer {
  /** The port actually bound (differs from the requested one when that was 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /healthz` -> 200 on `host:port`, for the kubelet's probes, until the program grows
 * its real server (gRPC for the manager and agent, the HTTPS webhook for the injector), which
 * will then answer the same path.
 */
export async function startHealthServer(port: number, host = '0.0.0.0'): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== HEALTHZ_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    }
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
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Probes use keep-alive; without this, close() would wait for their idle sockets.
        server.closeIdleConnections();
      }),
  };
}
