// Runs the in-cluster probe script with this machine's Node against local servers: the script
// is exactly what the e2e suite ships into a pod.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROBE_SCRIPT, parseProbeResult, probeEnv } from '../src/probe-script.js';
import { processRunner } from '../src/process-runner.js';

/** An echo-like server whose answers alternate between `hosts`, like a Service over several pods. */
async function rotatingEcho(hosts: readonly string[]): Promise<Server> {
  let n = 0;
  const server = createServer((req, res) => {
    const host = hosts[n++ % hosts.length];
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ host, method: req.method, path: req.url, headers: req.headers }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const portOf = (s: Server): number => (s.address() as AddressInfo).port;

async function runProbe(targets: string[], distinct: number): Promise<string> {
  const r = await processRunner.run(process.execPath, ['-e', PROBE_SCRIPT], {
    env: { ...process.env, ...probeEnv(targets, distinct) },
    timeoutMs: 60_000,
  });
  if (r.exitCode !== 0) throw new Error(`probe exited ${String(r.exitCode)}: ${r.stderr}`);
  return r.stdout;
}

t.test('keeps asking until it has heard from enough distinct hosts', async (t) => {
  const server = await rotatingEcho(['pod-a', 'pod-b']);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://localhost:${portOf(server)}/x`;
  const [r] = parseProbeResult(await runProbe([url], 2));
  t.equal(r?.url, url);
  t.match(r?.address ?? '', /^(127\.0\.0\.1|::1)$/, 'resolved localhost');
  t.same(r?.errors, []);
  t.same([...new Set(r?.hosts)].sort(), ['pod-a', 'pod-b']);
  t.equal(r?.hosts.length, 4, 'stops at the minimum request count once both hosts answered');
  t.ok(r?.statuses.every((s) => s === 200));
});

t.test('gives up on a target after a few errors and still reports every target', async (t) => {
  const server = await rotatingEcho(['only-pod']);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  // A port that was just free: nothing listens there.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const closedPort = portOf(closed);
  await new Promise<void>((resolve) => closed.close(() => resolve()));

  const good = `http://127.0.0.1:${portOf(server)}/`;
  const bad = `http://127.0.0.1:${closedPort}/`;
  const results = parseProbeResult(await runProbe([bad, good], 2));
  t.equal(results.length, 2);
  t.equal(results[0]?.errors.length, 3, 'three connection errors, then the next target');
  t.match(results[0]?.errors[0] ?? '', /ECONNREFUSED/);
  t.same(new Set(results[1]?.hosts), new Set(['only-pod']), 'one host only: asks up to the cap');
  t.equal(results[1]?.hosts.length, 40);
});

t.test('parseProbeResult finds its line among other output', async (t) => {
  t.same(parseProbeResult('noise\nPROBE_RESULT [{"url":"u","address":null,"statuses":[],"hosts":[],"errors":["e"]}]\n'), [
    { url: 'u', address: null, statuses: [], hosts: [], errors: ['e'] },
  ]);
  t.throws(() => parseProbeResult('Error: boom\n'), /no PROBE_RESULT line; output:\nError: boom/);
});
