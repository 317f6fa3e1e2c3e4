/**
 * Carries connections to 127.0.0.1:<port> inside a network namespace to 127.0.0.1:<port> of
 * this machine's own loopback. The two share the file system but not loopback, so the relay
 * goes through a Unix socket: a listener inside the namespace (a small `node` started there)
 * hands each connection to a Unix socket that this process serves by dialling the port. This is
 * how an isolated workstation reaches an API server published on loopback only, as kind's is on
 * a laptop. The bytes pass as they are (TLS included): the certificate for 127.0.0.1 still fits.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { LongRunning } from './process-runner.js';

/** Runs inside the namespace: listens on 127.0.0.1:PORT, pipes each connection to the Unix socket SOCK. */
const INSIDE_SCRIPT = String.raw`
const net = require('node:net');
const [port, sock] = [Number(process.argv[1]), process.argv[2]];
net.createServer({ allowHalfOpen: true }, (c) => {
  const u = net.connect({ path: sock, allowHalfOpen: true });
  c.pipe(u).pipe(c);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(port, '127.0.0.1', () => console.log('relaying'));
`;

export interface LoopbackRelay {
  /** Stops both ends. */
  close(): Promise<void>;
}

/**
 * Starts the relay for `port`: the outside end in this process, the inside one with `spawnInside`
 * (which runs its argv in the namespace). Resolves once the inside end listens.
 */
export async function relayLoopbackPort(port: number, dir: string, spawnInside: (argv: readonly string[]) => LongRunning): Promise<LoopbackRelay> {
  const sockPath = join(dir, `loopback-${port}.sock`);
  const open = new Set<Socket>();
  // Half-open kept on every socket: a client's FIN must not cut off the answer still coming.
  const outside: Server = createServer({ allowHalfOpen: true }, (inner) => {
    const target = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    open.add(inner).add(target);
    inner.pipe(target).pipe(inner);
    const done = (): void => {
      inner.destroy();
      target.destroy();
      open.delete(inner);
      open.delete(target);
    };
    inner.on('error', done).on('close', done);
    target.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve, reject) => outside.once('error', reject).listen(sockPath, resolve));
  const closeOutside = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of open) s.destroy();
      outside.close(() => resolve());
    });
  let inside: LongRunning | undefined;
  try {
    inside = spawnInside([process.execPath, '-e', INSIDE_SCRIPT, String(port), sockPath]);
    await inside.waitForOutput(/relaying/, 10_000);
  } catch (err: unknown) {
    await inside?.stop();
    await closeOutside();
    throw err;
  }
  const running = inside;
  return {
    async close() {
      await running.stop();
      await closeOutside();
    },
  };
}
