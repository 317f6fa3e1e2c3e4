import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { connectLocal, describeLocalDialError, localPortRefuses } from '../../src/daemon/local-dial.js';

/** A server on `host` that writes the address it was reached on and closes. */
async function listenOn(t: Test, host: string): Promise<number> {
  const server = net.createServer((s) => {
    // The probe of localPortRefuses closes at once: its reset is expected.
    s.on('error', () => undefined);
    s.end(s.localAddress ?? '');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** A port that nothing listens on: one a server had, closed again. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What the server wrote back, or the error of the dial. */
function dial(port: number): Promise<{ said: string } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = connectLocal(port);
    let said = '';
    socket.on('data', (chunk: Buffer) => (said += chunk.toString('utf8')));
    socket.on('end', () => resolve({ said }));
    socket.on('error', (error: NodeJS.ErrnoException) => resolve({ error }));
  });
}

const ipv6 = await new Promise<boolean>((resolve) => {
  const probe = net.createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

t.test('a process listening on 127.0.0.1 is reached there', async (t) => {
  const port = await listenOn(t, '127.0.0.1');
  t.strictSame(await dial(port), { said: '127.0.0.1' });
  t.equal(await localPortRefuses(port), false);
});

t.test('a process listening on ::1 alone is reached there', { skip: ipv6 ? false : 'this host has no IPv6 loopback' }, async (t) => {
  const port = await listenOn(t, '::1');
  t.strictSame(await dial(port), { said: '::1' });
  t.equal(await localPortRefuses(port), false);
});

t.test('nothing listening: refused, and said so plainly', async (t) => {
  const port = await closedPort();
  const result = await dial(port);
  if (!('error' in result)) throw new Error(`reached "${result.said}"`);
  t.equal(result.error.code, 'ECONNREFUSED');
  t.equal(describeLocalDialError(result.error, port), `nothing listens on port ${port} of this host (tried 127.0.0.1 and ::1)`);
  t.equal(await localPortRefuses(port), true);
});

t.test('other errors keep their own message', (t) => {
  t.equal(describeLocalDialError(Object.assign(new Error('connect EACCES'), { code: 'EACCES' }), 1), 'connect EACCES');
  t.equal(describeLocalDialError(Object.assign(new Error(''), { code: 'EHOSTUNREACH' }), 1), 'EHOSTUNREACH');
  t.end();
});
