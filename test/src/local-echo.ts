/**
 * The workstation's side of an intercept in the suites: an HTTP server that answers every request
 * with `{"host": <name>}`, as the echo image's pods do, so `hostsAnswering` tells the two apart.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LocalEcho {
  readonly port: number;
  /** What it answers as `host`: `workstation-<port>` unless named. */
  readonly host: string;
}

/** Starts it on `address` (loopback by default); it is closed when the test `t` ends. */
export async function startLocalEcho(t: { teardown(fn: () => Promise<void>): void }, options: { name?: string; address?: string } = {}): Promise<LocalEcho> {
  let host = options.name ?? '';
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ host }));
  });
  await new Promise<void>((ok) => server.listen(0, options.address ?? '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  if (host === '') host = `workstation-${port}`;
  t.teardown(() => new Promise<void>((ok) => server.close(() => ok())));
  return { port, host };
}
