/**
 * Who answers a Service right now, request by request: `count` GETs of `url`, one after another
 * from a pod of the echo image (`node -e`, as there is no curl image to pull), each on a
 * connection of its own so that the Service routes each one afresh. Right after a rollout, that
 * shows whether any request still reaches an old pod.
 */
import { eventually } from './eventually.js';
import type { Kube } from './kube.js';

/** Plain CommonJS, run verbatim by the Node in the image: prints one line per request. */
const SCRIPT = String.raw`
const http = require('node:http');
const ask = () => new Promise((resolve) => {
  const req = http.get(process.argv[1], { agent: false, timeout: 2000 }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => { try { resolve(JSON.parse(body).host); } catch (e) { resolve('ERROR ' + e.message); } });
  });
  req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
  req.on('error', (e) => resolve('ERROR ' + e.message));
});
(async () => { for (let i = 0; i < Number(process.argv[2]); i++) console.log(await ask()); })();
`;

/**
 * The `host` each of `count` GETs of `url` was answered by, in order, sent from `pod` in `ns`
 * (the echo server answers with its host name); 'ERROR ...' for one that failed or took over 2 s.
 */
export async function hostsAnswering(kube: Kube, ns: string, pod: string, url: string, count: number): Promise<string[]> {
  const out = await kube.kubectl(['-n', ns, 'exec', pod, '--', 'node', '-e', SCRIPT, url, String(count)], { timeoutMs: 60_000 });
  return out.trim().split('\n');
}

/**
 * Waits (up to a minute) until `count` GETs in a row are all answered by `host`, e.g. the
 * workstation once an intercept is made, and returns those answers.
 */
export function answeredOnlyBy(kube: Kube, ns: string, pod: string, url: string, host: string, count = 10): Promise<string[]> {
  return eventually(
    async () => {
      const got = await hostsAnswering(kube, ns, pod, url, count);
      if (got.some((h) => h !== host)) throw new Error(`answered by ${got.join(', ')}`);
      return got;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `${count} requests in a row answered by ${host}` },
  );
}

/**
 * Plain CommonJS: GETs the URL over a fresh connection every 20 ms until the file /tmp/<tag>.stop
 * exists, printing `<ms since start> <host | ERROR ...>` per request and `DONE` at the end.
 */
const ASK_UNTIL_STOPPED = String.raw`
const http = require('node:http');
const fs = require('node:fs');
const [url, stopFile] = process.argv.slice(1);
const started = Date.now();
const ask = () => new Promise((resolve) => {
  const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => { try { resolve(JSON.parse(body).host); } catch (e) { resolve('ERROR ' + e.message); } });
  });
  req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
  req.on('error', (e) => resolve('ERROR ' + e.message));
});
(async () => {
  while (!fs.existsSync(stopFile)) {
    const at = Date.now() - started;
    console.log(at + ' ' + (await ask()));
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log('DONE');
})();
`;

/** One answer of `keepAsking`: when it was asked (ms after the start) and who answered, or `ERROR ...`. */
export interface Answer {
  readonly atMs: number;
  readonly answer: string;
}

/**
 * Sends GETs of `url` from `pod` without pause (each on a fresh connection, 20 ms apart) until
 * `stop()`, which returns every answer in order: to show that no request failed while something
 * happened to the Service's pods.
 */
export function keepAsking(kube: Kube, ns: string, pod: string, url: string): { stop(): Promise<Answer[]> } {
  const stopFile = `/tmp/ask-${Date.now()}-${Math.random().toString(16).slice(2)}.stop`;
  const running = kube.start(['-n', ns, 'exec', pod, '--', 'node', '-e', ASK_UNTIL_STOPPED, url, stopFile]);
  return {
    async stop(): Promise<Answer[]> {
      await running.waitForOutput(/^\d+ /m, 60_000);
      await kube.kubectl(['-n', ns, 'exec', pod, '--', 'node', '-e', `require('node:fs').writeFileSync(${JSON.stringify(stopFile)}, '')`]);
      await running.waitForOutput(/^DONE$/m, 30_000);
      await running.stop();
      return running
        .output()
        .split('\n')
        .map((line) => /^(\d+) (.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ atMs: Number(m[1]), answer: m[2] ?? '' }));
    },
  };
}
