import { Server, credentials } from '@grpc/grpc-js';
import { ManagerClient, ManagerService, type ManagerServer } from '@telepresence-ts/proto/manager/v1';
import { request } from 'node:http';
import t from 'tap';
import { listenGrpcAndHealth } from '../../src/shared/grpc-http-mux.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('one port answers gRPC and GET /healthz', async (t) => {
  const server = new Server();
  server.addService(ManagerService, {
    version: (_call, cb) => cb(null, { version: '9.9.9', name: 'test', agentImage: '' }),
  } as Partial<ManagerServer> as ManagerServer);
  let healthy = true;
  const listener = await listenGrpcAndHealth(server, 0, '127.0.0.1', () => healthy);
  const client = new ManagerClient(`127.0.0.1:${listener.port}`, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    server.forceShutdown();
    await listener.close();
  });
  t.strictSame(await get(listener.port, '/healthz'), { status: 200, body: 'ok\n' });
  t.strictSame(await get(listener.port, '/other'), { status: 404, body: 'not found\n' });
  const version = await new Promise((resolve, reject) => client.version({}, (err, res) => (err ? reject(err) : resolve(res))));
  t.strictSame(version, { version: '9.9.9', name: 'test', agentImage: '' });
  healthy = false;
  t.strictSame(await get(listener.port, '/healthz'), { status: 503, body: 'stopping\n' }, 'unhealthy while stopping');
});
