/**
 * The loopback relay the isolated workstation uses when the API server listens on 127.0.0.1 only
 * (kind on a laptop): from inside a network namespace of its own, a connection to 127.0.0.1:port
 * reaches a server on this machine's loopback, both ways, and nothing else of loopback. Root, no
 * cluster.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { relayLoopbackPort } from '../src/loopback-relay.js';
import { processRunner } from '../src/process-runner.js';

/** Connects to 127.0.0.1:PORT, sends "ping", prints what comes back (or the error). */
const CLIENT = String.raw`
const s = require('node:net').connect(Number(process.argv[1]), '127.0.0.1', () => s.end('ping'));
let got = '';
s.on('data', (d) => (got += d)).on('end', () => console.log('got ' + got)).on('error', (e) => console.log('error ' + e.code));
`;

t.test('a connection to 127.0.0.1 inside the namespace reaches the same port of this machine', async (t) => {
  const ns = `tp-relay-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `${ns}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ip = async (...args: string[]): Promise<void> => {
    const r = await processRunner.run('ip', args, { timeoutMs: 10_000 });
    if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  await ip('netns', 'add', ns);
  t.teardown(() => ip('netns', 'del', ns));
  await ip('-n', ns, 'link', 'set', 'lo', 'up');

  const server: Server = createServer((c) => c.on('data', (d) => c.end(`pong to ${String(d)}`)));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  const port = (server.address() as { port: number }).port;
  const inside = (argv: readonly string[]): Promise<string> =>
    processRunner.run('ip', ['netns', 'exec', ns, ...argv], { timeoutMs: 10_000 }).then((r) => r.stdout.trim());

  t.equal(await inside([process.execPath, '-e', CLIENT, String(port)]), 'error ECONNREFUSED', 'without the relay, the namespace has no such port');
  const relay = await relayLoopbackPort(port, dir, (argv) => processRunner.start('ip', ['netns', 'exec', ns, ...argv]));
  t.teardown(() => relay.close());
  t.equal(await inside([process.execPath, '-e', CLIENT, String(port)]), 'got pong to ping', 'with it, the server answers, both ways');
  t.equal(await inside([process.execPath, '-e', CLIENT, String(port + 1 === 65536 ? port - 1 : port + 1)]), 'error ECONNREFUSED', 'and only that port');
  await relay.close();
  t.equal(await inside([process.execPath, '-e', CLIENT, String(port)]), 'error ECONNREFUSED', 'closed, it is gone');
});
