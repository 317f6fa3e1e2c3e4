import { LOCAL_HOST, TpError, describeHttpFilter, isPersonal, methodProblem, pathPrefixProblem, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print, progressTo } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';
import { dispositionName, interceptJson } from './list.js';
import { ExitStatus, checkLaunchable, formatRemoteText, interceptOptions, launchOf, remoteJson, remoteOptions, runIntercepted, type RemoteArgs } from '../launch.js';

interface InterceptArgs extends GlobalOptions, RemoteArgs {
  workload: string;
  port: string;
  service: string | undefined;
  container: string | undefined;
  name: string | undefined;
  /** yargs gives a string for one `--http-header`, an array for several. */
  'http-header'?: string | string[] | undefined;
  'http-path-prefix'?: string | undefined;
  /** One string per flag; each may list several methods, comma-separated. */
  'http-method'?: string | string[] | undefined;
}

const PORT_HINT = 'use --port <local port>[:<service port name or number>], e.g. --port 8080 or --port 8080:http';

/** Parses `--port local[:servicePort]`. */
export function parsePortFlag(value: string): { localPort: number; servicePort: string } {
  const m = /^(\d{1,5})(?::([A-Za-z0-9][-A-Za-z0-9]*))?$/.exec(value);
  const localPort = m === null ? NaN : Number(m[1]);
  if (m === null || localPort < 1 || localPort > 65535) {
    throw new TpError('user', 'bad-port', `invalid --port "${value}"`, { hint: PORT_HINT });
  }
  return { localPort, servicePort: m[2] ?? '' };
}

const HEADER_HINT = 'use --http-header <name>=<value>, e.g. --http-header x-user=alice (repeat it to require several headers)';
/** An HTTP field name: a token (RFC 9110 5.1). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value: visible characters, spaces and tabs, no line breaks (RFC 9110 5.5). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses the `--http-header name=value` flags of a personal intercept: the first `=` splits name
 * and value; the value may be empty and may contain `=`. Names keep their case (they match
 * case-insensitively in the agent).
 */
export function parseHeaderFlags(values: string | readonly string[] | undefined): InterceptSpec['headers'] {
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  return list.map((flag) => {
    const eq = flag.indexOf('=');
    const name = eq < 0 ? flag : flag.slice(0, eq);
    const value = eq < 0 ? '' : flag.slice(eq + 1);
    let problem: string | undefined;
    if (eq < 0) problem = 'it has no "="';
    else if (name.trim() === '') problem = 'the header name is empty';
    else if (!HEADER_NAME.test(name)) problem = `"${name}" is not a valid header name`;
    else if (!HEADER_VALUE.test(value)) problem = 'the value contains a line break or control character';
    if (problem !== undefined) {
      throw new TpError('user', 'bad-http-header', `invalid --http-header "${flag}": ${problem}`, { hint: HEADER_HINT });
    }
    return { name, value: value.trim() };
  });
}

const PATH_PREFIX_HINT = 'use --http-path-prefix /<path>, e.g. --http-path-prefix /api/ (the path as requests send it: no query or fragment, spaces as %20)';

/**
 * Checks `--http-path-prefix`: '' when not given; else it must start with `/` and have no spaces,
 * `?` or `#` (it is compared with the raw path of each request, before any query).
 */
export function parsePathPrefixFlag(value: string | undefined): string {
  if (value === undefined) return '';
  const problem = pathPrefixProblem(value);
  if (problem !== undefined) throw new TpError('user', 'bad-http-path-prefix', `invalid --http-path-prefix "${value}": ${problem}`, { hint: PATH_PREFIX_HINT });
  return value;
}

const METHOD_HINT = 'use --http-method <METHOD>, e.g. --http-method GET --http-method POST or --http-method GET,POST';

/**
 * Parses the `--http-method` flags, each one method or a comma-separated list: upper-cased (so
 * `get` is `GET`), each an HTTP token (RFC 9110), duplicates dropped, in the order given.
 */
export function parseMethodFlags(values: string | readonly string[] | undefined): string[] {
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  const methods: string[] = [];
  for (const flag of list) {
    for (const part of flag.split(',')) {
      const method = part.trim().toUpperCase();
      const problem = methodProblem(method);
      if (problem !== undefined) throw new TpError('user', 'bad-http-method', `invalid --http-method "${flag}": ${problem}`, { hint: METHOD_HINT });
      if (!methods.includes(method)) methods.push(method);
    }
  }
  return methods;
}

/**
 * The spec the flags ask for. Every flag is checked here, before the daemon is asked for anything,
 * so that a malformed one changes nothing in the cluster.
 */
export function buildSpec(argv: InterceptArgs): InterceptSpec {
  const { localPort, servicePort } = parsePortFlag(argv.port);
  const headers = parseHeaderFlags(argv['http-header']);
  const httpPathPrefix = parsePathPrefixFlag(argv['http-path-prefix']);
  const httpMethods = parseMethodFlags(argv['http-method']);
  return {
    name: argv.name ?? '',
    namespace: argv.namespace ?? '',
    workloadName: argv.workload,
    workloadKind: '',
    serviceName: argv.service ?? '',
    servicePort,
    containerName: argv.container ?? '',
    localPort,
    headers,
    httpPathPrefix,
    httpMethods,
    mode: '',
    ports: [],
  };
}

export function formatInterceptText(ii: InterceptInfo): string {
  const t = ii.target;
  const servicePort = t === undefined ? '' : `${t.serviceName}:${t.servicePortName !== '' ? `${t.servicePortName} (${t.servicePort})` : t.servicePort}`;
  const lines = [
    `Using ${ii.spec?.workloadKind !== undefined && ii.spec.workloadKind !== '' ? ii.spec.workloadKind : 'workload'} ${ii.spec?.workloadName ?? ''}`,
    `   Intercept name : ${ii.spec?.name ?? ''}`,
    `   State          : ${dispositionName(ii.disposition)}${ii.message !== '' ? ` (${ii.message})` : ''}`,
    `   Destination    : ${LOCAL_HOST}:${ii.spec?.localPort ?? 0}`,
    `   Requests       : ${describeHeaders(ii)}`,
  ];
  // The target is resolved by the manager; an older or partial answer may lack it.
  if (t !== undefined) {
    lines.push(`   Service port   : ${servicePort}`);
    // Their connections arrive at the same place in the pod: the intercept takes them as well.
    if (t.sharedWith.length > 0) lines.push(`   Also takes     : ${t.sharedWith.join(', ')} (the same container port)`);
    lines.push(`   Container      : ${t.containerName}:${t.containerPort}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Which requests an intercept takes, for humans: all of them, or those its filter takes
 * (`with x-user=alice to /api/ with GET or POST (personal intercept)`).
 */
export function describeHeaders(ii: InterceptInfo): string {
  if (!isPersonal(ii.spec)) return 'all (global intercept)';
  return `${describeHttpFilter(ii.spec!)} (personal intercept)`;
}

/**
 * What `intercept` and `ingest` do once the spec is built: check the command to launch, make the
 * engagement through the daemon, print it (on stderr when a process runs: stdout is the
 * process's), call `afterCreate`, then run the process, if any, and leave when it exits.
 */
export async function engage(
  deps: CommandDeps,
  argv: GlobalOptions & RemoteArgs,
  spec: InterceptSpec,
  format: (info: InterceptInfo) => string,
  afterCreate: (launched: boolean) => Promise<void> = async () => undefined,
): Promise<void> {
  const launch = launchOf(argv);
  checkLaunchable(launch, deps.findExecutable);
  const { daemon } = await connectedDaemon(deps, argv);
  try {
    const info = await daemon.intercept(spec, progressTo(deps.io), interceptOptions(argv, deps.env.cwd));
    const out = launch === undefined ? deps.io : { out: (text: string) => deps.io.err(text), err: (text: string) => deps.io.err(text) };
    print(out, argv.output, { ...interceptJson(info), ...remoteJson(info.remote) }, () => format(info) + formatRemoteText(info.remote));
    await afterCreate(launch !== undefined);
    if (launch !== undefined) {
      const code = await runIntercepted({ processes: deps.processes, env: deps.processEnv, note: (line) => deps.io.err(`${line}\n`) }, daemon, info, launch);
      if (code !== 0) throw new ExitStatus(code);
    }
  } finally {
    daemon.close();
  }
}

/** `intercept <workload> --port local[:svcport]`: routes the service port's traffic to a local port. */
export function interceptCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<InterceptArgs>({
    command: 'intercept <workload>',
    describe: "Send a workload's service traffic to a local port",
    builder: (y) =>
      y
        .positional('workload', { type: 'string', demandOption: true, describe: 'The Deployment, ReplicaSet or StatefulSet to intercept' })
        .options({
          port: { alias: 'p', type: 'string', demandOption: true, describe: 'local[:service port name or number]' },
          service: { type: 'string', describe: 'The Service to intercept, when several select the workload' },
          container: { type: 'string', describe: 'The container that serves the port, when several do' },
          name: { type: 'string', describe: 'The intercept name (default <workload>-<namespace>)' },
          'http-header': {
            type: 'string',
            describe: 'name=value: take only the HTTP requests carrying this header (repeatable; all must match); the rest go to the app',
          },
          'http-path-prefix': {
            type: 'string',
            describe: 'Take only the HTTP requests whose path starts with this (e.g. /api/; the raw path, before any query); makes the intercept personal',
          },
          'http-method': {
            type: 'string',
            describe: 'Take only the HTTP requests with this method (repeatable or comma-separated: GET,POST); makes the intercept personal',
          },
          ...remoteOptions,
        })
        .example('$0 intercept web --port 8080', "web's only service port to localhost:8080")
        .example('$0 intercept web --port 8080:http --http-header x-user=alice', 'only requests carrying x-user: alice; the rest reach the app')
        .example('$0 intercept web --port 8080:http --http-path-prefix /api/ --http-method GET,POST', 'only GET and POST requests to /api/...; the rest reach the app')
        .example('$0 intercept web --port 8080 --env-file web.env --mount=false', "write the container's environment, skip the volumes")
        .example('$0 intercept web --port 8080 -- npm start', 'run a command with the remote environment; leave when it exits')
        .example('$0 intercept web --port 8080 --docker-run -- my-image', 'the same with a container')
        .epilogue(
          'The first intercept of a workload restarts its pods with the traffic-agent (your kubeconfig needs no right to change it) ' +
            'and returns once the Service sends its connections to them; later intercepts need no restart.\n' +
            'With --http-header, --http-path-prefix or --http-method the intercept is personal: it takes only the HTTP requests that match all of them ' +
            '(HTTP/1.1 and h2c), and the rest reach the app; without any, it takes every connection of the port.\n' +
            'List what can be intercepted with `kubectl telepresence list`; end an intercept with `kubectl telepresence leave <name>`.',
        )
        // Everything after `--` is the command to run, never options of ours.
        .parserConfiguration({ 'populate--': true }),
    handler: async (argv) => {
      const spec = buildSpec(argv);
      await engage(deps, argv, spec, formatInterceptText, async (launched) => {
        // A launched command starts listening after this; anyone else should already.
        if (!launched && (await deps.localPortRefuses(spec.localPort))) {
          deps.io.err(
            `note: nothing listens on ${LOCAL_HOST}:${spec.localPort} (127.0.0.1 or ::1) yet; intercepted connections are refused until your service does\n`,
          );
        }
      });
    },
  });
}
