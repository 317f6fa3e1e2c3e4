/**
 * How the front ends show an engagement's traffic (the CLI's `watch` and the VS Code panel): the
 * one masking of credential headers, and the one line and JSON object per event. Agents send
 * headers as they are, and only while someone watches; masking here keeps them off the screen
 * unless the user asks for them (`--show-credentials`).
 */
import type { Header, TrafficEvent } from '@telepresence-ts/proto/manager/v1';

export type { Header, TrafficEvent } from '@telepresence-ts/proto/manager/v1';

/** What a masked value shows instead. */
export const MASKED = '••••••';

/** Header names that carry credentials whatever their value looks like. */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
/** Parts of a name that say the value is a credential (x-auth-token, x-client-secret, ...). */
const CREDENTIAL_PARTS = /token|secret|password|api-?key/;

/** True for a header whose value is masked unless the user asks to see credentials. */
export function isCredentialHeader(name: string): boolean {
  const n = name.toLowerCase();
  return CREDENTIAL_HEADERS.has(n) || CREDENTIAL_PARTS.test(n);
}

/**
 * The headers with credential values masked. An Authorization header keeps its scheme
 * ("Bearer ••••••"), which says how the caller authenticated without saying as whom.
 */
export function maskHeaders(headers: readonly Header[], showCredentials = false): Header[] {
  if (showCredentials) return headers.map((h) => ({ ...h }));
  return headers.map((h) => {
    if (!isCredentialHeader(h.name)) return { ...h };
    const scheme = /^(authorization|proxy-authorization)$/i.test(h.name) ? /^([A-Za-z][\w.+-]*) +\S/.exec(h.value)?.[1] : undefined;
    return { name: h.name, value: scheme === undefined ? MASKED : `${scheme} ${MASKED}` };
  });
}

/** What the user asked to see of each event. */
export interface TrafficViewOptions {
  /** Print request and response headers (the JSON form always has them). */
  readonly headers?: boolean;
  /** Print the bodies the agent sent (only when asked for with a body size). */
  readonly bodies?: boolean;
  readonly showCredentials?: boolean;
}

/** The event as front ends show it: credentials masked (unless asked), bodies as text. */
export interface TrafficEventView {
  readonly interceptId: string;
  readonly kind: 'tcp' | 'http';
  /** ISO 8601. */
  readonly startedAt: string;
  readonly durationMs: number;
  readonly pod: string;
  readonly source: string;
  readonly answeredBy: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly requestHeaders?: Header[];
  readonly responseHeaders?: Header[];
  readonly requestBody?: string;
  readonly responseBody?: string;
  readonly error?: string;
  readonly droppedBytes?: number;
}

/** Bytes as text: UTF-8 when it is, else base64 with a "base64:" prefix. */
function bodyText(b: Uint8Array): string {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const text = buf.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buf) ? text : `base64:${buf.toString('base64')}`;
}

/** The event as shown (and as `--output json` prints it, one object per line). */
export function viewOf(e: TrafficEvent, options: TrafficViewOptions = {}): TrafficEventView {
  const http = e.kind === 'http';
  return {
    interceptId: e.interceptId,
    kind: http ? 'http' : 'tcp',
    startedAt: new Date(e.startedAt).toISOString(),
    durationMs: Math.round(e.durationMs * 10) / 10,
    pod: e.podName,
    source: e.source,
    answeredBy: e.answeredBy,
    bytesIn: e.bytesIn,
    bytesOut: e.bytesOut,
    ...(http
      ? {
          method: e.method,
          path: e.path,
          status: e.status,
          requestHeaders: maskHeaders(e.requestHeaders, options.showCredentials),
          responseHeaders: maskHeaders(e.responseHeaders, options.showCredentials),
        }
      : {}),
    ...(options.bodies === true && e.requestBody.length > 0 ? { requestBody: bodyText(e.requestBody) } : {}),
    ...(options.bodies === true && e.responseBody.length > 0 ? { responseBody: bodyText(e.responseBody) } : {}),
    ...(e.error !== '' ? { error: e.error } : {}),
    ...(e.droppedBytes > 0 ? { droppedBytes: e.droppedBytes } : {}),
  };
}

/** "512 B", "2.1 KiB", "3.4 MiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

/** "HH:MM:SS.mmm" in local time, as a log line shows it. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** "12 ms", "0.4 ms", "1.3 s". */
export function formatDuration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return ms < 10 ? `${Math.round(ms * 10) / 10} ms` : `${Math.round(ms)} ms`;
}

/**
 * One event as lines of text: the summary line
 * (`12:00:01.250  GET /api/x  200  12 ms  workstation  pod/web-1`, or for a connection
 * `12:00:01.250  peer 10.0.0.5:4321  in 120 B  out 2.1 KiB  340 ms  app  pod/web-1`), then, when
 * asked, its headers and bodies indented.
 */
export function formatTrafficEvent(e: TrafficEvent, options: TrafficViewOptions = {}): string[] {
  const v = viewOf(e, options);
  const tail = [formatDuration(e.durationMs), e.answeredBy, `pod/${e.podName}`];
  if (e.droppedBytes > 0) tail.push(`dropped ${formatBytes(e.droppedBytes)}`);
  if (e.error !== '') tail.push(`error: ${e.error}`);
  const lines =
    v.kind === 'http'
      ? [[formatClock(e.startedAt), `${e.method} ${e.path}`, e.status === 0 ? '---' : String(e.status), ...tail].join('  ')]
      : [[formatClock(e.startedAt), `peer ${e.source}`, `in ${formatBytes(e.bytesIn)}`, `out ${formatBytes(e.bytesOut)}`, ...tail].join('  ')];
  if (options.headers === true && v.kind === 'http') {
    for (const h of v.requestHeaders ?? []) lines.push(`    > ${h.name}: ${h.value}`);
    for (const h of v.responseHeaders ?? []) lines.push(`    < ${h.name}: ${h.value}`);
  }
  if (v.requestBody !== undefined) lines.push(`    > (body) ${v.requestBody}`);
  if (v.responseBody !== undefined) lines.push(`    < (body) ${v.responseBody}`);
  return lines;
}
