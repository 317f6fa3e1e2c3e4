/**
 * An HTTP probe that runs inside the cluster as `node -e PROBE_SCRIPT` on the echo image (there
 * is no curl or busybox image to pull). For each target URL it resolves the host name, then GETs
 * the URL over a fresh connection each time, so a Service's load balancing gets a chance to pick
 * another backend, until it has heard from `PROBE_DISTINCT_HOSTS` different echo pods (or hit the
 * request or error cap). It prints one `PROBE_RESULT <json>` line; `parseProbeResult` reads it back.
 *
 * Plain CommonJS JavaScript on purpose: it is executed verbatim by the Node in the image.
 */
export const PROBE_SCRIPT = String.raw`
const http = require('node:http');
const dns = require('node:dns').promises;
const targets = JSON.parse(process.env.PROBE_TARGETS);
const wantHosts = Number(process.env.PROBE_DISTINCT_HOSTS || 2);
const minRequests = Number(process.env.PROBE_MIN_REQUESTS || 4);
const maxRequests = Number(process.env.PROBE_MAX_REQUESTS || 40);
const maxErrors = 3;
const get = (url) => new Promise((resolve, reject) => {
  const req = http.get(url, { agent: false }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (body += c));
    res.on('end', () => resolve({ status: res.statusCode, body }));
  });
  req.setTimeout(5000, () => req.destroy(new Error('no response within 5000 ms')));
  req.on('error', reject);
});
(async () => {
  const results = [];
  for (const url of targets) {
    const r = { url, address: null, statuses: [], hosts: [], errors: [] };
    try {
      r.address = (await dns.lookup(new URL(url).hostname)).address;
    } catch (e) {
      r.errors.push('lookup ' + new URL(url).hostname + ': ' + e.message);
    }
    for (let i = 0; i < maxRequests && r.errors.length < maxErrors; i++) {
      if (i >= minRequests && new Set(r.hosts).size >= wantHosts) break;
      try {
        const res = await get(url);
        r.statuses.push(res.status);
        r.hosts.push(JSON.parse(res.body).host);
      } catch (e) {
        r.errors.push('GET ' + url + ': ' + e.message);
      }
    }
    results.push(r);
  }
  console.log('PROBE_RESULT ' + JSON.stringify(results));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
`;

export interface ProbeTargetResult {
  readonly url: string;
  /** What the host name resolved to, or null if the lookup failed. */
  readonly address: string | null;
  readonly statuses: readonly number[];
  /** The `host` field of each echo answer, i.e. which pod answered. */
  readonly hosts: readonly string[];
  readonly errors: readonly string[];
}

/** The environment for the probe container. */
export function probeEnv(targets: readonly string[], distinctHosts: number): Record<string, string> {
  return { PROBE_TARGETS: JSON.stringify(targets), PROBE_DISTINCT_HOSTS: String(distinctHosts) };
}

/** Finds the `PROBE_RESULT` line in the probe's output; throws, quoting the output, if there is none. */
export function parseProbeResult(output: string): ProbeTargetResult[] {
  const line = output.split('\n').find((l) => l.startsWith('PROBE_RESULT '));
  if (line === undefined) throw new Error(`the probe printed no PROBE_RESULT line; output:\n${output}`);
  return JSON.parse(line.slice('PROBE_RESULT '.length)) as ProbeTargetResult[];
}
