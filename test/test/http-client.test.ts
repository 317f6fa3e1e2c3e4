import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpGet } from '../src/http-client.js';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

t.test('returns status, headers and body', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(201, { 'x-seen': req.url ?? '' });
    res.end('hello');
  });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = await listen(server);
  const res = await httpGet(`http://127.0.0.1:${port}/p?q=1`, 5_000);
  t.equal(res.status, 201);
  t.equal(res.headers['x-seen'], '/p?q=1');
  t.equal(res.body, 'hello');
});

t.test('rejects when no complete response arrives in time', async (t) => {
  // Accepts the request and never answers.
  const server = createServer(() => undefined);
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = await listen(server);
  await t.rejects(httpGet(`http://127.0.0.1:${port}/`, 200), { message: /no complete response within 200 ms/ });
});

t.test('rejects when nothing listens', async (t) => {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  await t.rejects(httpGet(`http://127.0.0.1:${port}/`, 5_000), { code: 'ECONNREFUSED' });
});
