import t from 'tap';
import { request } from 'node:http';
import { startHealthServer } from '../../src/shared/healthz.js';

function call(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

t.test('serves /healthz on a real port', async (t) => {
  const server = await startHealthServer(0, '127.0.0.1');
  t.teardown(() => server.close());
  t.ok(server.port > 0, 'bound a port');
  const cases: ReadonlyArray<{ method: string; path: string; status: number; body: string }> = [
    { method: 'GET', path: '/healthz', status: 200, body: 'ok\n' },
    { method: 'GET', path: '/healthz?verbose=1', status: 200, body: 'ok\n' },
    { method: 'HEAD', path: '/healthz', status: 200, body: '' },
    { method: 'POST', path: '/healthz', status: 405, body: 'method not allowed\n' },
    { method: 'GET', path: '/', status: 404, body: 'not found\n' },
  ];
  for (const c of cases) {
    t.same(await call(server.port, c.method, c.path), { status: c.status, body: c.body }, `${c.method} ${c.path}`);
  }
});

t.test('close stops listening', async (t) => {
  const server = await startHealthServer(0, '127.0.0.1');
  await call(server.port, 'GET', '/healthz');
  await server.close();
  await t.rejects(call(server.port, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
});

t.test('a port in use is an error', async (t) => {
  const first = await startHealthServer(0, '127.0.0.1');
  t.teardown(() => first.close());
  await t.rejects(startHealthServer(first.port, '127.0.0.1'), { code: 'EADDRINUSE' });
});
