/**
 * Debugging intercepted traffic, free of any vscode import. Any launch configuration with a
 * `telepresence` object (or a `telepresence` configuration that names another one) runs with the
 * intercepted container's environment merged into its `env`, after the intercept it names exists;
 * the debuggee listens on the intercept's local port and so receives the traffic. Nothing here
 * depends on the debugger type: every debug adapter VS Code knows takes an `env` object.
 */
import { TpError, methodProblem, pathPrefixProblem, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { DebugHost, FileStore, Host, LaunchConfig, Settings } from './host.js';
import { parseHeaders } from './intercept-flow.js';
import type { InterceptRemote, Session, WorkloadView } from './session.js';

/** The `telepresence` object of a launch configuration. */
export interface TelepresenceOptions {
  /** Use this existing intercept (of this daemon). */
  readonly intercept?: string;
  /** Or: the workload to intercept (reusing this daemon's intercept of it, if any). */
  readonly workload?: string;
  readonly namespace?: string;
  /** The service port's name or number, when the workload has several. */
  readonly port?: string;
  /** Where the debuggee listens; the intercepted container port when absent. */
  readonly localPort?: number;
  /** `name=value, ...` for a personal intercept. */
  readonly headers?: string;
  /** A personal intercept of the requests whose path starts with this (`/api/`). */
  readonly httpPathPrefix?: string;
  /** A personal intercept of the requests with these methods: `GET,POST` or `["GET", "POST"]`. */
  readonly httpMethods?: string | readonly string[];
}

/**
 * The path prefix and methods of the options, checked as the CLI checks `--http-path-prefix` and
 * `--http-method` (core's http-filter), with an error that names the launch configuration.
 */
export function httpFilterOf(options: TelepresenceOptions, configName: string): { httpPathPrefix: string; httpMethods: string[] } {
  const httpPathPrefix = options.httpPathPrefix ?? '';
  if (typeof httpPathPrefix !== 'string' || (httpPathPrefix !== '' && pathPrefixProblem(httpPathPrefix) !== undefined)) {
    throw new TpError('config', 'bad-launch-config', `"httpPathPrefix" of launch configuration "${configName}": ${typeof httpPathPrefix === 'string' ? pathPrefixProblem(httpPathPrefix) : 'not a string'}`, {
      hint: 'a path as requests send it, starting with "/", e.g. "httpPathPrefix": "/api/"',
    });
  }
  const raw = options.httpMethods ?? [];
  const list = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : undefined;
  const httpMethods: string[] = [];
  for (const item of list ?? [undefined]) {
    const method = typeof item === 'string' ? item.trim().toUpperCase() : '';
    const problem = list === undefined || typeof item !== 'string' ? 'not a string or a list of strings' : methodProblem(method);
    if (problem !== undefined) {
      throw new TpError('config', 'bad-launch-config', `"httpMethods" of launch configuration "${configName}": ${problem}`, {
        hint: 'HTTP methods, e.g. "httpMethods": "GET,POST" or ["GET", "POST"]',
      });
    }
    if (!httpMethods.includes(method)) httpMethods.push(method);
  }
  return { httpPathPrefix, httpMethods };
}

/** Carried by a resolved configuration, so the end of its session knows what to leave. */
export const INTERCEPT_MARKER = '__telepresenceIntercept';

/**
 * The environment the debuggee gets: the intercepted container's, as the daemon read it from the
 * pod; from a daemon that does not report it, the literal `env` values of the pod template.
 */
export function interceptEnvironment(ii: InterceptInfo, remote: InterceptRemote | undefined, w: WorkloadView | undefined): Record<string, string> {
  const container = ii.target?.containerName ?? ii.spec?.containerName ?? '';
  const fromCluster = remote !== undefined && Object.keys(remote.environment).length > 0 ? remote.environment : (w?.containerEnv.get(container) ?? {});
  return { ...fromCluster, TELEPRESENCE_INTERCEPT_ID: ii.id, TELEPRESENCE_CONTAINER: container };
}

/** `KEY=value` lines, values quoted when they need it (the format of docker's and dotenv's env files). */
export function formatEnvFile(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${/^[\w@%+=:,./-]*$/.test(v) ? v : JSON.stringify(v)}`)
    .join('\n') + '\n';
}

function optionsOf(config: LaunchConfig): TelepresenceOptions | undefined {
  const raw = config['telepresence'];
  if (raw === undefined || raw === null || raw === false) return undefined;
  if (typeof raw !== 'object') {
    throw new TpError('config', 'bad-launch-config', `"telepresence" in launch configuration "${config.name}" must be an object`, {
      hint: 'e.g. "telepresence": { "workload": "web", "localPort": 8080 }',
    });
  }
  return raw;
}

export interface DebugDeps {
  readonly session: Session;
  readonly host: Host;
  readonly debug: DebugHost;
  readonly settings: () => Settings;
  readonly files: FileStore;
}

export class DebugIntegration {
  readonly #deps: DebugDeps;
  /** Debug session id -> the intercept its configuration used. */
  readonly #sessions = new Map<string, string>();

  constructor(deps: DebugDeps) {
    this.#deps = deps;
  }

  /**
   * A `telepresence` configuration: starts the configuration it names with its options and
   * returns undefined (VS Code then starts nothing for this one).
   */
  async resolveWrapper(config: LaunchConfig): Promise<undefined> {
    const name = typeof config['configuration'] === 'string' ? config['configuration'] : '';
    const wrapped = this.#deps.debug.launchConfigurations().find((c) => c.name === name && c.type !== 'telepresence');
    if (wrapped === undefined) {
      throw new TpError('config', 'unknown-launch-config', `launch configuration "${config.name}" names "${name}", which launch.json does not have`, {
        hint: 'set "configuration" to the name of a launch configuration of another type',
      });
    }
    const { type: _t, request: _r, name: _n, configuration: _c, ...options } = config;
    await this.#deps.debug.startDebugging({ ...wrapped, telepresence: options });
    return undefined;
  }

  /** Any configuration: one with a `telepresence` object gets its intercept and environment. */
  async resolve(config: LaunchConfig): Promise<LaunchConfig> {
    const options = optionsOf(config);
    if (options === undefined) return config;
    // Checked before anything is asked of the daemon or the cluster.
    const filter = httpFilterOf(options, config.name);
    const { session } = this.#deps;
    if (session.phase !== 'connected') await session.connect();
    const ii = await this.#interceptFor(options, filter);
    const w = session.workload(ii.spec?.namespace ?? '', ii.spec?.workloadName ?? '');
    const remote = session.remote(ii.spec?.name ?? '');
    const own = typeof config['env'] === 'object' && config['env'] !== null ? (config['env'] as Record<string, string>) : {};
    this.#deps.host.log(`debugging "${config.name}" with intercept ${ii.spec?.name ?? ''} (localhost:${ii.spec?.localPort ?? 0})`);
    // The configuration's own env wins: it is what the user typed for this run.
    return { ...config, env: { ...interceptEnvironment(ii, remote, w), ...own }, [INTERCEPT_MARKER]: ii.spec?.name ?? '' };
  }

  async #interceptFor(options: TelepresenceOptions, filter: { httpPathPrefix: string; httpMethods: string[] }): Promise<InterceptInfo> {
    const { session } = this.#deps;
    const ours = session.intercepts;
    if (options.intercept !== undefined) {
      const found = ours.find((ii) => ii.spec?.name === options.intercept);
      if (found === undefined) {
        throw new TpError('user', 'unknown-intercept', `there is no intercept named ${options.intercept}`, {
          hint: ours.length > 0 ? `intercepts: ${ours.map((ii) => ii.spec?.name ?? '').join(', ')}` : 'intercept a workload first, or name a "workload"',
        });
      }
      return found;
    }
    if (options.workload === undefined) {
      if (ours.length === 1 && ours[0] !== undefined) return ours[0];
      throw new TpError('config', 'bad-launch-config', '"telepresence" needs "workload" or "intercept"', {
        hint: ours.length > 1 ? `one of the intercepts: ${ours.map((ii) => ii.spec?.name ?? '').join(', ')}` : 'e.g. "telepresence": { "workload": "web" }',
      });
    }
    const namespace = options.namespace ?? session.connection?.namespace ?? '';
    const existing = ours.find((ii) => ii.spec?.workloadName === options.workload && ii.spec?.namespace === namespace);
    if (existing !== undefined) {
      // Its traffic goes to its own local port: a debuggee listening elsewhere would never see it.
      if (options.localPort !== undefined && existing.spec?.localPort !== options.localPort) {
        throw new TpError('user', 'intercept-port-mismatch', `intercept ${existing.spec?.name ?? ''} of ${options.workload} sends its traffic to localhost:${existing.spec?.localPort ?? 0}, not ${options.localPort}`, {
          hint: `leave it first, or set "localPort" to ${existing.spec?.localPort ?? 0}`,
        });
      }
      return existing;
    }
    const w = session.workload(namespace, options.workload);
    const port = w?.ports.find((p) => options.port === undefined || p.servicePortName === options.port || String(p.servicePort) === options.port);
    const localPort = options.localPort ?? port?.containerPort;
    if (localPort === undefined) {
      throw new TpError('config', 'bad-launch-config', `no local port for the intercept of ${options.workload}`, { hint: 'add "localPort" to "telepresence"' });
    }
    const spec: InterceptSpec = {
      name: '',
      namespace,
      workloadName: options.workload,
      workloadKind: w?.kind ?? '',
      serviceName: port?.serviceName ?? '',
      servicePort: options.port ?? '',
      containerName: port?.containerName ?? '',
      localPort,
      headers: parseHeaders(options.headers ?? ''),
      ...filter,
      mode: '',
      ports: [],
    };
    return this.#deps.host.withProgress(`Intercepting ${options.workload}`, (report) => session.intercept(spec, report));
  }

  /** A debug session started; remembers the intercept of a top-level one. */
  started(id: string, config: LaunchConfig, hasParent: boolean): void {
    const name = config[INTERCEPT_MARKER];
    if (!hasParent && typeof name === 'string' && name !== '') this.#sessions.set(id, name);
  }

  /** A debug session ended: leaves its intercept when the setting says so. */
  async ended(id: string): Promise<void> {
    const name = this.#sessions.get(id);
    if (name === undefined) return;
    this.#sessions.delete(id);
    if (!this.#deps.settings().leaveInterceptOnDebugEnd) {
      this.#deps.host.log(`debug session ended; keeping intercept ${name}`);
      return;
    }
    if (!this.#deps.session.intercepts.some((ii) => ii.spec?.name === name)) return;
    this.#deps.host.log(`debug session ended; leaving intercept ${name}`);
    await this.#deps.session.leave(name);
  }

  /** Picks a launch configuration and debugs it with `intercept`. */
  async debugIntercept(ii: InterceptInfo): Promise<void> {
    const configs = this.#deps.debug.launchConfigurations().filter((c) => c.type !== 'telepresence');
    if (configs.length === 0) {
      throw new TpError('config', 'no-launch-config', 'the workspace has no launch configuration to debug with', {
        hint: `add one to .vscode/launch.json whose program listens on port ${ii.spec?.localPort ?? 0}`,
      });
    }
    const chosen = await this.#deps.host.pick(
      `Debug with intercept ${ii.spec?.name ?? ''}`,
      configs.map((c) => ({ label: c.name, description: c.type, value: c })),
    );
    if (chosen === undefined) return;
    await this.#deps.debug.startDebugging({ ...chosen, telepresence: { intercept: ii.spec?.name ?? '' } });
  }

  /** Opens the env file the daemon wrote for the intercept, or writes one of what is known and opens that. */
  async openEnvironmentFile(ii: InterceptInfo): Promise<void> {
    const { session } = this.#deps;
    const remote = session.remote(ii.spec?.name ?? '');
    if (remote !== undefined && remote.envFile !== '') {
      await this.#deps.host.openFile(remote.envFile);
      return;
    }
    const w = session.workload(ii.spec?.namespace ?? '', ii.spec?.workloadName ?? '');
    const path = await this.#deps.files.write(`${ii.spec?.name ?? 'intercept'}.env`, formatEnvFile(interceptEnvironment(ii, remote, w)));
    await this.#deps.host.openFile(path);
  }
}
