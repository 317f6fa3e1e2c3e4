/**
 * The HTTP filter of a personal intercept: which requests it takes. One definition for every
 * program: the CLI and the extension validate and describe filters with it, the traffic-manager
 * decides conflicts with it, the traffic-agent matches requests with it (HTTP/1.x and h2c alike).
 * Dependency-free, so that the in-cluster programs can import it (docs/personal-intercepts.md).
 */

/** What a personal intercept filters on: the matching fields of an `InterceptSpec`. */
export interface HttpFilter {
  /** Every one must be present in a request; names compare case-insensitively, values exactly. */
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** The start the request's path must have, byte for byte; '' (or absent) for any path. */
  readonly httpPathPrefix?: string;
  /** The request's method must be one of these (upper case, compared exactly); empty for any. */
  readonly httpMethods?: readonly string[];
}

/** One request as the agent sees it, before anything is forwarded. */
export interface HttpRequestHead {
  /** As sent (`GET`; HTTP/2's `:method`). */
  readonly method: string;
  /** The request target as sent (`/a/b?c`, `http://host/a/b`, `*`; HTTP/2's `:path`). */
  readonly target: string;
  /** Header lines as (name, value) pairs, in any case, repeated names allowed. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/**
 * Whether an intercept with this filter is personal (routed per HTTP request) rather than global
 * (every connection of the port): it has headers, a path prefix or methods. Every program asks
 * this one function, so that a filter without headers is personal everywhere.
 */
export function isPersonal(filter: HttpFilter | undefined): boolean {
  if (filter === undefined) return false;
  return filter.headers.length > 0 || (filter.httpPathPrefix ?? '') !== '' || (filter.httpMethods ?? []).length > 0;
}

/** An HTTP method: a token (RFC 9110 9.1, 5.6.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Why `prefix` cannot be a path prefix, or undefined when it can. It is compared with the path of
 * request targets, which are visible ASCII without a fragment, and ends where the query starts.
 */
export function pathPrefixProblem(prefix: string): string | undefined {
  if (!prefix.startsWith('/')) return 'it does not start with "/"';
  if (/\s/.test(prefix)) return 'it contains a space (write it percent-encoded, %20, as requests carry it)';
  if (prefix.includes('?')) return 'it contains "?": the query is not part of the path';
  if (prefix.includes('#')) return 'it contains "#": requests carry no fragment';
  if (!/^[\x21-\x7e]+$/.test(prefix)) return 'it contains a character a request path cannot carry (non-ASCII or control): percent-encode it';
  return undefined;
}

/** Why `method` (already upper-cased) cannot be an HTTP method, or undefined when it can. */
export function methodProblem(method: string): string | undefined {
  if (method === '') return 'the method is empty';
  if (!TOKEN.test(method)) return `"${method}" is not an HTTP method (letters, digits and !#$%&'*+-.^_\`|~ only)`;
  return undefined;
}

/** Why the filter cannot be served (a prefix or a method that no request could match), or undefined. */
export function httpFilterProblem(filter: HttpFilter): string | undefined {
  const prefix = filter.httpPathPrefix ?? '';
  const prefixProblem = prefix === '' ? undefined : pathPrefixProblem(prefix);
  if (prefixProblem !== undefined) return `path prefix "${prefix}": ${prefixProblem}`;
  for (const m of filter.httpMethods ?? []) {
    const problem = methodProblem(m) ?? (m !== m.toUpperCase() ? `"${m}" is not upper case` : undefined);
    if (problem !== undefined) return `method "${m}": ${problem}`;
  }
  return undefined;
}

/**
 * The path of a request target, as sent: no decoding, no normalisation (`//a`, `/%61` and `/a/../b`
 * stay what they are), the query cut off.
 *
 * - origin-form `/a/b?q`: `/a/b`;
 * - absolute-form `http://host:80/a/b?q` (to proxies, but servers must accept it): `/a/b`, and
 *   `/` when it has no path (RFC 9110 4.2.3: an empty path is `/`);
 * - authority-form (`CONNECT host:443`) and asterisk-form (`OPTIONS *`): the target itself, which
 *   no prefix (they start with `/`) matches.
 */
export function requestPath(target: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(target);
  let path = target;
  if (scheme !== null) {
    const rest = target.slice(scheme[0].length);
    const end = rest.search(/[/?#]/);
    path = end === -1 || rest[end] !== '/' ? '/' : rest.slice(end);
  }
  const query = path.search(/[?#]/);
  return query === -1 ? path : path.slice(0, query);
}

/**
 * Whether the request is one the filter takes: it carries every header (names in any case, values
 * exactly; a name sent twice matches when either line has the value), its path (`requestPath`)
 * starts with the prefix byte for byte, and its method is one of the methods, compared exactly
 * (methods are case-sensitive, RFC 9110 9.1). An empty part takes any request.
 */
export function requestMatches(filter: HttpFilter, request: HttpRequestHead): boolean {
  const methods = filter.httpMethods ?? [];
  if (methods.length > 0 && !methods.includes(request.method)) return false;
  const prefix = filter.httpPathPrefix ?? '';
  if (prefix !== '' && !requestPath(request.target).startsWith(prefix)) return false;
  return filter.headers.every((h) => {
    const name = h.name.toLowerCase();
    return request.headers.some(([n, v]) => v === h.value && n.toLowerCase() === name);
  });
}

/**
 * The filter as a key: two filters are identical (and their intercepts conflict) when their keys
 * are equal. Headers are a set (any order, names in any case); methods a set.
 */
export function httpFilterKey(filter: HttpFilter): string {
  const headers = filter.headers.map((h) => `${h.name.toLowerCase()}=${h.value}`).sort();
  const methods = [...new Set(filter.httpMethods ?? [])].sort();
  return JSON.stringify([headers, filter.httpPathPrefix ?? '', methods]);
}

/**
 * The order in which personal intercepts are tried on a request, the more specific first: more
 * headers, then a longer path prefix, then fewer methods (none, any method, counts as the
 * fewest specific). Equal ones compare 0; the caller breaks the tie (the older first).
 */
export function compareSpecificity(a: HttpFilter, b: HttpFilter): number {
  const methods = (f: HttpFilter) => ((f.httpMethods ?? []).length === 0 ? Number.POSITIVE_INFINITY : new Set(f.httpMethods).size);
  return (
    b.headers.length - a.headers.length ||
    (b.httpPathPrefix ?? '').length - (a.httpPathPrefix ?? '').length ||
    // Both infinite gives NaN: equal.
    (methods(a) - methods(b) || 0)
  );
}

/**
 * Which requests the filter takes, for humans: `with x-user=alice and x-team=blue to /api/ with
 * GET or POST`; each part only when set; '' for a global intercept (all requests).
 */
export function describeHttpFilter(filter: HttpFilter): string {
  const parts: string[] = [];
  if (filter.headers.length > 0) parts.push(`with ${filter.headers.map((h) => `${h.name}=${h.value}`).join(' and ')}`);
  if ((filter.httpPathPrefix ?? '') !== '') parts.push(`to ${filter.httpPathPrefix}`);
  const methods = filter.httpMethods ?? [];
  if (methods.length > 0) parts.push(`with ${methods.length === 1 ? methods[0] : `${methods.slice(0, -1).join(', ')} or ${methods[methods.length - 1]}`}`);
  return parts.join(' ');
}
