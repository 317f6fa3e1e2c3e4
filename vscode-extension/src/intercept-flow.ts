/**
 * Intercept… from the tree: asks only what cannot be inferred (the port when the workload has
 * several, the local port, an optional HTTP filter), runs the intercept under a progress notification
 * and offers what to do next.
 */
import { TpError, describeHttpFilter, isPersonal, methodProblem, pathPrefixProblem, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { Host } from './host.js';
import { portId, portLabel, type InterceptablePort } from './ports.js';
import type { WorkloadView } from './session.js';

/** Parses `name=value` pairs separated by commas; '' is a global intercept (no headers). */
export function parseHeaders(text: string): Array<{ name: string; value: string }> {
  const headers: Array<{ name: string; value: string }> = [];
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*[=:]\s*(.*)$/.exec(item);
    if (m === null || m[1] === undefined || m[2] === undefined || m[2].trim() === '') {
      throw new TpError('user', 'bad-header', `"${item}" is not a header match`, { hint: 'write name=value pairs separated by commas, e.g. x-user=alice' });
    }
    headers.push({ name: m[1].toLowerCase(), value: m[2].trim() });
  }
  return headers;
}

const FILTER_HINT = 'write name=value headers, a path prefix starting with / and upper-case methods, separated by commas, e.g. x-user=alice, /api/, GET, POST';

/**
 * Parses the one filter answer of the dialog: comma-separated items, each a header `name=value`
 * (or `name: value`), a path prefix (it starts with `/`; one at most, and with no comma), or a
 * method (an upper-case HTTP token, `GET`). All of them must match a request; '' is a global
 * intercept. A path prefix or methods alone make the intercept personal, as headers do.
 */
export function parseHttpFilter(text: string): Pick<InterceptSpec, 'headers' | 'httpPathPrefix' | 'httpMethods'> {
  const headers: InterceptSpec['headers'] = [];
  const httpMethods: string[] = [];
  let httpPathPrefix = '';
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    if (item.startsWith('/')) {
      const problem = pathPrefixProblem(item) ?? (httpPathPrefix !== '' ? `a second path prefix (the first was ${httpPathPrefix})` : undefined);
      if (problem !== undefined) throw new TpError('user', 'bad-http-path-prefix', `"${item}" is not a path prefix: ${problem}`, { hint: FILTER_HINT });
      httpPathPrefix = item;
    } else if (!/[=:]/.test(item) && item === item.toUpperCase() && methodProblem(item) === undefined) {
      if (!httpMethods.includes(item)) httpMethods.push(item);
    } else {
      try {
        headers.push(...parseHeaders(item));
      } catch (err: unknown) {
        throw err instanceof TpError ? new TpError('user', err.code, err.message, { hint: FILTER_HINT }) : err;
      }
    }
  }
  return { headers, httpPathPrefix, httpMethods };
}

/** undefined for a usable local port, else why it is not. */
export function localPortProblem(text: string, taken: ReadonlySet<number>): string | undefined {
  if (!/^\d{1,5}$/.test(text.trim())) return 'a port number, 1-65535';
  const n = Number(text.trim());
  if (n < 1 || n > 65535) return 'a port number, 1-65535';
  if (taken.has(n)) return `port ${n} already receives another intercept`;
  return undefined;
}

/** The workload's port to intercept: the given one, the only one, or the one the user picks. */
export async function choosePort(host: Host, w: WorkloadView, given?: InterceptablePort): Promise<InterceptablePort | undefined> {
  if (given !== undefined) return given;
  if (w.ports.length === 0) {
    throw new TpError('user', 'no-service', `${w.kind.toLowerCase()}/${w.name} has no Service port that reaches one of its containers`, {
      hint: `expose it first, e.g. kubectl expose ${w.kind.toLowerCase()}/${w.name} -n ${w.namespace} --port 80 --target-port <container port>`,
    });
  }
  if (w.ports.length === 1) return w.ports[0];
  return host.pick(
    `Intercept ${w.name}: which port?`,
    w.ports.map((p) => ({ label: portLabel(p), value: p })),
  );
}

/** Asks for the rest of the spec; undefined when the user cancels. */
export async function askInterceptSpec(host: Host, w: WorkloadView, given: InterceptablePort | undefined, taken: ReadonlySet<number>): Promise<InterceptSpec | undefined> {
  const port = await choosePort(host, w, given);
  if (port === undefined) return undefined;
  let suggested = port.containerPort;
  while (taken.has(suggested) && suggested < 65535) suggested++;
  const local = await host.askText({
    title: `Intercept ${w.name}: ${portLabel(port)}`,
    prompt: 'The local port that receives the traffic',
    value: String(suggested),
    validate: (v) => localPortProblem(v, taken),
  });
  if (local === undefined) return undefined;
  const filterText = await host.askText({
    title: `Intercept ${w.name}: ${portLabel(port)} → localhost:${local.trim()}`,
    prompt: 'Only requests that match all of these (a personal intercept): headers name=value, a path prefix /…, methods; leave empty to intercept all traffic',
    placeHolder: 'x-user=alice, /api/, GET, POST',
    validate: (v) => {
      try {
        parseHttpFilter(v);
        return undefined;
      } catch (err: unknown) {
        return err instanceof Error ? err.message : String(err);
      }
    },
  });
  if (filterText === undefined) return undefined;
  return {
    name: '',
    namespace: w.namespace,
    workloadName: w.name,
    workloadKind: w.kind,
    serviceName: port.serviceName,
    servicePort: portId(port),
    containerName: port.containerName,
    localPort: Number(local.trim()),
    ...parseHttpFilter(filterText),
    mode: '',
    ports: [],
  };
}

/**
 * Asks what a wiretap needs (the port when the workload has several, and the local port that
 * receives the copy); undefined when the user cancels. A wiretap has no filter: it copies all.
 */
export async function askWiretapSpec(host: Host, w: WorkloadView, given: InterceptablePort | undefined, taken: ReadonlySet<number>): Promise<InterceptSpec | undefined> {
  const port = await choosePort(host, w, given);
  if (port === undefined) return undefined;
  let suggested = port.containerPort;
  while (taken.has(suggested) && suggested < 65535) suggested++;
  const local = await host.askText({
    title: `Wiretap ${w.name}: ${portLabel(port)}`,
    prompt: 'The local port that receives a copy of every connection (the app still answers them; what your process answers is discarded)',
    value: String(suggested),
    validate: (v) => localPortProblem(v, taken),
  });
  if (local === undefined) return undefined;
  return {
    name: '',
    namespace: w.namespace,
    workloadName: w.name,
    workloadKind: w.kind,
    serviceName: port.serviceName,
    servicePort: portId(port),
    containerName: port.containerName,
    localPort: Number(local.trim()),
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'wiretap',
    ports: [],
  };
}

/**
 * Asks what a replace needs: the container, when the workload's Services lead to several, and a
 * confirmation, since the container stops in every replica. Its ports keep their numbers on the
 * workstation (`kubectl telepresence replace --port` moves them). Undefined when the user cancels.
 */
export async function askReplaceSpec(host: Host, w: WorkloadView): Promise<InterceptSpec | undefined> {
  const containers = [...new Set(w.ports.map((p) => p.containerName))];
  if (containers.length === 0) {
    throw new TpError('user', 'no-service', `${w.kind.toLowerCase()}/${w.name} has no Service port that reaches one of its containers`, {
      hint: `expose it first, e.g. kubectl expose ${w.kind.toLowerCase()}/${w.name} -n ${w.namespace} --port 80 --target-port <container port>`,
    });
  }
  const container =
    containers.length === 1
      ? containers[0]
      : await host.pick(
          `Replace in ${w.name}: which container?`,
          containers.map((c) => ({ label: c, value: c })),
        );
  if (container === undefined) return undefined;
  const ports = [...new Set(w.ports.filter((p) => p.containerName === container).map((p) => p.containerPort))].sort((a, b) => a - b);
  const replicas = w.replicas === 1 ? 'its one replica' : `all ${w.replicas} replicas`;
  const go = await host.showMessage(
    'warning',
    `Replace ${container} of ${w.name}? It stops running in ${replicas} until you leave, and its ports ${ports.join(', ')} come to the same ports on this machine.`,
    [REPLACE],
  );
  if (go !== REPLACE) return undefined;
  return {
    name: '',
    namespace: w.namespace,
    workloadName: w.name,
    workloadKind: w.kind,
    serviceName: '',
    servicePort: '',
    containerName: container,
    localPort: 0,
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'replace',
    ports: [],
  };
}

/** The confirmation's action. */
export const REPLACE = 'Replace';

/** `Replacing app of web: 8080 → localhost:8080, 9090 → localhost:19090 (not running in the cluster until you leave)` */
export function replacedMessage(ii: InterceptInfo): string {
  const ports = (ii.spec?.ports ?? []).map((p) => `${p.containerPort} → localhost:${p.localPort}`).join(', ');
  const container = ii.target?.containerName ?? ii.spec?.containerName ?? '';
  return `Replacing ${container} of ${ii.spec?.workloadName ?? ''}: ${ports !== '' ? ports : 'its ports → localhost'} (not running in the cluster until you leave)`;
}

/** `Wiretapping web: a copy of web:80 → localhost:8080` */
export function wiretappedMessage(ii: InterceptInfo): string {
  const t = ii.target;
  const from = t !== undefined ? `${t.serviceName}:${t.servicePort}` : (ii.spec?.workloadName ?? '');
  return `Wiretapping ${ii.spec?.workloadName ?? ''}: a copy of ${from} → localhost:${ii.spec?.localPort ?? 0} (the callers are answered as before)`;
}

/** `Intercepted web: web:80 → localhost:8080` */
export function interceptedMessage(ii: InterceptInfo): string {
  const t = ii.target;
  const from = t !== undefined ? `${t.serviceName}:${t.servicePort}` : (ii.spec?.workloadName ?? '');
  const filter = isPersonal(ii.spec) ? describeHttpFilter(ii.spec!) : '';
  // Other Service ports that lead to the same container port: their traffic comes too.
  const shared = t !== undefined && t.sharedWith.length > 0 ? `; also ${t.sharedWith.join(', ')}, the same container port` : '';
  return `Intercepted ${ii.spec?.workloadName ?? ''}: ${from} → localhost:${ii.spec?.localPort ?? 0}${filter !== '' ? ` (requests ${filter})` : ''}${shared}`;
}
