import { InterceptDisposition, type InterceptInfo } from '@telepresence-ts/proto/manager/v1';
import { allIntercepts, servicePortLabel, type AgentConfig } from '@telepresence-ts/core/agent-config';
import { compareSpecificity, isPersonal, requestMatches, type HttpFilter, type HttpRequestHead } from '@telepresence-ts/core/http-filter';
import { engagementMode, takesTraffic } from '@telepresence-ts/core/engagement';

/** One port the agent listens on, and where its traffic goes while nobody intercepts it. */
export interface ForwardRoute {
  readonly containerName: string;
  /** The app's port: passthrough connections go to `127.0.0.1:<containerPort>`. */
  readonly containerPort: number;
  /** Where the agent listens (all interfaces); also what an intercept's target names. */
  readonly agentPort: number;
  /** For logs: `<service>:<port name or number>`. */
  readonly label: string;
}

/**
 * Every route of a configuration: one per agent port, across all containers. Service ports that
 * lead to the same app port share an agent port, and so one route, labelled with them all.
 */
export function forwardRoutes(config: AgentConfig): ForwardRoute[] {
  const routes = new Map<number, ForwardRoute>();
  for (const { container, intercept } of allIntercepts(config)) {
    const label = servicePortLabel(intercept);
    const known = routes.get(intercept.agentPort);
    routes.set(intercept.agentPort, {
      containerName: container.name,
      containerPort: intercept.containerPort,
      agentPort: intercept.agentPort,
      label: known === undefined ? label : `${known.label},${label}`,
    });
  }
  return [...routes.values()];
}

/** The engagement's mode; an unknown one (a newer manager's) is served as nothing. */
function modeOf(ic: InterceptInfo): ReturnType<typeof engagementMode> | undefined {
  try {
    return engagementMode(ic.spec ?? {});
  } catch {
    return undefined;
  }
}

/**
 * Whether `ic` is an engagement of `route` that the agent serves (an ingest never is): an
 * intercept or wiretap of the route's agent port, or a replace of the route's container, which
 * takes every port of it. WAITING counts as well as ACTIVE: the manager decides dispositions (the
 * agent has no review call in v1) and answers AGENT_ERROR for one that must not be served.
 */
function servedOn(ic: InterceptInfo, route: ForwardRoute): boolean {
  // An ingest takes no traffic: the app keeps every connection.
  if (ic.spec !== undefined && !takesTraffic(ic.spec)) return false;
  const mode = modeOf(ic);
  const target = ic.target;
  if (mode === undefined || target === undefined) return false;
  if (mode === 'replace' ? target.containerName !== route.containerName : target.agentPort !== route.agentPort) return false;
  if (target.containerName !== '' && target.containerName !== route.containerName) return false;
  return ic.disposition === InterceptDisposition.ACTIVE || ic.disposition === InterceptDisposition.WAITING;
}

/** Whether `ic` takes the connections (or requests) it matches, as intercepts and replaces do; a wiretap only copies them. */
function takesOver(ic: InterceptInfo): boolean {
  return modeOf(ic) !== 'wiretap';
}

/** Older first, then the smaller id: an order every replica agrees on. */
function olderFirst(a: { createdAt: number; id: string }, b: { createdAt: number; id: string }): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * The global intercept (or replace), if any, that takes every connection on `route`.
 *
 * One with an HTTP filter is a personal intercept (see `personalIntercepts`). When several global ones
 * match (the manager prevents that), the oldest wins, so every replica agrees.
 */
export function chooseIntercept(intercepts: readonly InterceptInfo[], route: ForwardRoute): InterceptInfo | undefined {
  let chosen: InterceptInfo | undefined;
  for (const ic of intercepts) {
    if (!servedOn(ic, route) || !takesOver(ic) || isPersonal(ic.spec)) continue;
    if (chosen === undefined || olderFirst(ic, chosen) < 0) chosen = ic;
  }
  return chosen;
}

/** A personal intercept as the HTTP router matches requests against it: its id and filter. */
export interface PersonalIntercept extends HttpFilter {
  readonly id: string;
  readonly createdAt: number;
}

/**
 * The personal intercepts of `route` (those with headers, a path prefix or methods), in the order
 * requests are matched against them: the more specific first (`compareSpecificity`: more headers,
 * then a longer path prefix, then fewer methods), so that the narrower rule wins when a request
 * satisfies two (`x-user=a` and `x-user=a, x-team=t`; `/api/` and `/api/v2/`), then the oldest.
 */
export function personalIntercepts(intercepts: readonly InterceptInfo[], route: ForwardRoute): PersonalIntercept[] {
  return intercepts
    .filter((ic) => servedOn(ic, route) && takesOver(ic) && isPersonal(ic.spec))
    .map((ic) => ({ id: ic.id, headers: ic.spec?.headers ?? [], httpPathPrefix: ic.spec?.httpPathPrefix ?? '', httpMethods: ic.spec?.httpMethods ?? [], createdAt: ic.createdAt }))
    .sort((a, b) => compareSpecificity(a, b) || olderFirst(a, b));
}

/**
 * The wiretaps of `route`, oldest first: each gets a copy of every connection the route accepts,
 * whoever answers it (the app, a global intercept or the personal intercepts' router).
 */
export function wiretapsOn(intercepts: readonly InterceptInfo[], route: ForwardRoute): InterceptInfo[] {
  return intercepts.filter((ic) => servedOn(ic, route) && !takesOver(ic)).sort(olderFirst);
}

/** A request's header lines as (name, value) pairs, in any case, repeated names allowed. */
export type HeaderPairs = ReadonlyArray<readonly [string, string]>;

/** The pairs of a Node `rawHeaders` list (`[name, value, name, value, ...]`). */
export function pairsFromRaw(raw: readonly string[]): HeaderPairs {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/** The pairs of an HTTP/2 header object (pseudo-headers such as `:path` are not matched on). */
export function pairsFromObject(headers: Readonly<Record<string, string | string[] | undefined>>): HeaderPairs {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, v]);
  }
  return pairs;
}

/**
 * The id of the first personal intercept (in `personal`'s order) that takes the request
 * (`requestMatches`: all its headers, its path prefix, one of its methods), or undefined: the
 * request goes to the app. HTTP/1.x and h2c requests both come here.
 */
export function matchRequest(personal: readonly PersonalIntercept[], request: HttpRequestHead): string | undefined {
  return personal.find((p) => requestMatches(p, request))?.id;
}
