/**
 * The extension's view of telepresence, free of any vscode import: the daemon's connection and
 * intercepts (from its WatchState stream), and the cluster's namespaces, workloads and Services
 * (from Kubernetes watches) merged with the agent and intercept state the daemon lists. It follows
 * both live and tells listeners when anything changed; the tree, status bar and commands read it.
 *
 * The daemon is the one shared with the CLI: an intercept made with `kubectl telepresence` shows
 * up here through the same stream, and one made here shows up in `kubectl telepresence list`.
 */
import {
  ConnectionState,
  DEFAULT_MANAGER_NAMESPACE,
  TpError,
  toTpError,
  type ConnectionStatus,
  type DaemonApi,
  type InterceptInfo,
  type InterceptSpec,
  type KubeFlags,
  type KubeObject,
  type KubeWatcher,
  type TrafficEvent,
  type OutboundRequest,
  type StateSnapshot,
  type WatchedKind,
  type WorkloadInfo,
} from '@telepresence-ts/core';
import { interceptablePorts, type InterceptablePort, type ServiceObject, type WorkloadObject } from './ports.js';

/** What the view shows as a whole; drives the welcome view and the status bar. */
export type Phase = 'disconnected' | 'connecting' | 'connected' | 'no-manager';

/** Everything the extension needs from outside: the daemon, the cluster watches, settings, logs. */
export interface SessionDeps {
  /** This client's version: a daemon of another version is refused, as the CLI does. */
  readonly version: string;
  /** A client of the running daemon; with `start`, one is launched when none answers. */
  readonly openDaemon: (start: boolean) => Promise<DaemonApi | undefined>;
  /** Live views of the cluster; `close` (when there is one) ends them all at once. */
  readonly createWatcher: (flags: KubeFlags) => Promise<KubeWatcher & { close?(): void }>;
  /** The kubeconfig, context and namespace the settings (or kubectl's defaults) choose. */
  readonly kubeFlags: () => KubeFlags;
  readonly managerNamespace: () => string;
  /** What outbound access the settings ask for (see outbound.ts). */
  readonly outbound: () => OutboundRequest;
  readonly log: (line: string) => void;
}

/** One workload as the tree shows it. */
export interface WorkloadView {
  readonly namespace: string;
  readonly name: string;
  readonly kind: string;
  readonly readyReplicas: number;
  readonly replicas: number;
  /** "none", "configured" or "installed", as the daemon lists it; "unknown" until it has. */
  readonly agentState: string;
  readonly ports: readonly InterceptablePort[];
  /** Intercepts of this workload, by any client. */
  readonly intercepts: readonly InterceptInfo[];
  /** Literal `env` values of each container's pod template, by container name. */
  readonly containerEnv: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

const WORKLOAD_KINDS = ['Deployment', 'ReplicaSet', 'StatefulSet'] as const;

/** The watches and listed state of one namespace. */
interface NamespaceState {
  readonly objects: Map<WatchedKind, readonly KubeObject[]>;
  listed: readonly WorkloadInfo[] | undefined;
  readonly stops: Array<() => void>;
  listing: boolean;
  listAgain: boolean;
}

type Listener = () => void;

/** The environment and files the daemon has of one of its intercepts. */
export type InterceptRemote = StateSnapshot['remotes'][number];

export class Session {
  readonly #deps: SessionDeps;
  readonly #listeners = new Set<Listener>();
  #daemon: DaemonApi | undefined;
  #stopWatchState: (() => void) | undefined;
  #connection: ConnectionStatus | undefined;
  #intercepts: readonly InterceptInfo[] = [];
  #remotes: readonly InterceptRemote[] = [];
  #phase: Phase = 'disconnected';
  #lastError: TpError | undefined;
  /** Whether this session's last connect asked for outbound access. */
  #askedOutbound = false;
  #watcher: (KubeWatcher & { close?(): void }) | undefined;
  /** The context the watches were started for; a change of context restarts them. */
  #watchedContext = '';
  #namespaces: readonly string[] = [];
  #stopNamespaces: (() => void) | undefined;
  readonly #byNamespace = new Map<string, NamespaceState>();
  #generation = 0;

  constructor(deps: SessionDeps) {
    this.#deps = deps;
  }

  get phase(): Phase {
    return this.#phase;
  }
  get connection(): ConnectionStatus | undefined {
    return this.#connection;
  }
  /** This daemon's intercepts (made here or with the CLI). */
  get intercepts(): readonly InterceptInfo[] {
    return this.#intercepts;
  }
  /**
   * What the daemon has of one of its intercepts (the container's environment, the files it
   * wrote), when it reports it.
   */
  remote(interceptName: string): InterceptRemote | undefined {
    return this.#remotes.find((r) => r.name === interceptName);
  }
  /**
   * Connected after asking for outbound access, yet the daemon reports none: a daemon that has no
   * network daemon to ask (the extension's, having found no CLI of its version: see cli-bundle.ts).
   */
  get outboundMissing(): boolean {
    return this.#phase === 'connected' && this.#askedOutbound && this.#connection !== undefined && this.#connection.outbound === undefined;
  }
  /** Why the last connect failed, when it did. */
  get lastError(): TpError | undefined {
    return this.#lastError;
  }
  /** Namespaces of the cluster, the connection's first. */
  get namespaces(): readonly string[] {
    const own = this.#connection?.namespace ?? '';
    const rest = this.#namespaces.filter((n) => n !== own);
    return own !== '' ? [own, ...rest] : rest;
  }

  /** Registers a listener for "something changed"; returns the function that unregisters it. */
  onDidChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }

  /** Attaches to a daemon that is already running (the CLI may have connected it); starts none. */
  async attach(): Promise<void> {
    if (this.#daemon !== undefined) return;
    const daemon = await this.#deps.openDaemon(false);
    if (daemon !== undefined) await this.#follow(daemon);
  }

  /**
   * Starts the daemon if needed and connects it with the settings' kube flags and outbound access.
   * A daemon already connected with other settings (the CLI's, or these before they changed)
   * reconnects with these.
   */
  async connect(): Promise<ConnectionStatus> {
    const daemon = this.#daemon ?? (await this.#deps.openDaemon(true));
    if (daemon === undefined) {
      throw new TpError('internal', 'daemon-start-failed', 'the telepresence daemon could not be started');
    }
    if (this.#daemon === undefined) await this.#follow(daemon);
    this.#phase = 'connecting';
    this.#lastError = undefined;
    this.#changed();
    const flags = this.#deps.kubeFlags();
    const outbound = this.#deps.outbound();
    this.#askedOutbound = !outbound.disabled;
    try {
      const status = await daemon.connect({
        kube: { kubeconfig: flags.kubeconfig ?? '', context: flags.context ?? '', namespace: flags.namespace ?? '', kubeconfigEnv: flags.kubeconfigEnv ?? '' },
        managerNamespace: this.#deps.managerNamespace() || DEFAULT_MANAGER_NAMESPACE,
        product: 'vscode',
        outbound,
      });
      this.#applyConnection(status);
      return status;
    } catch (err: unknown) {
      const e = toTpError(err);
      this.#lastError = e;
      this.#phase = e.code === 'manager-not-installed' ? 'no-manager' : 'disconnected';
      this.#changed();
      throw e;
    }
  }

  /**
   * Departs from the manager and stops the daemon (the CLI's session ends with it). Followed or
   * not: a daemon of another version, refused by `#follow`, is stopped too. That is how a daemon
   * left running by an earlier extension is replaced without the CLI; Quit is in every release's
   * daemon.proto v1, as Version is.
   */
  async disconnect(): Promise<void> {
    const daemon = this.#daemon;
    if (daemon === undefined) {
      const other = await this.#deps.openDaemon(false);
      if (other === undefined) return;
      try {
        await other.quit();
      } finally {
        other.close();
      }
      return;
    }
    this.#unfollow();
    try {
      await daemon.quit();
    } finally {
      daemon.close();
      this.#changed();
    }
  }

  /** The connected daemon, or a `not-connected` error that says how to connect. */
  #connected(): DaemonApi {
    if (this.#daemon === undefined || this.#phase !== 'connected') {
      throw new TpError('user', 'not-connected', 'not connected to a cluster', { hint: 'run Telepresence: Connect' });
    }
    return this.#daemon;
  }

  /**
   * Prepares and creates an intercept, streaming the manager's progress lines; with `envFile`,
   * the daemon writes the container's environment there.
   */
  async intercept(spec: InterceptSpec, progress: (line: string) => void, envFile?: string): Promise<InterceptInfo> {
    const info = await this.#connected().intercept(spec, progress, envFile !== undefined ? { envFile } : undefined);
    this.#relist(info.spec?.namespace ?? '');
    return info;
  }

  async leave(name: string): Promise<void> {
    await this.#connected().leave(name);
  }

  /**
   * The traffic of an engagement (this daemon's, or another client's as the tree shows it) as it
   * happens, until the returned function is called or the stream ends (`onEnd`).
   */
  watchTraffic(name: string, namespace: string, onEvent: (e: TrafficEvent) => void, onEnd: (err: TpError | undefined) => void): () => void {
    return this.#connected().watchTraffic({ name, namespace, bodyBytes: 0 }, onEvent, onEnd);
  }

  /** The workload as the tree shows it, once its namespace's watches have delivered it. */
  workload(namespace: string, name: string): WorkloadView | undefined {
    return this.workloads(namespace).find((w) => w.name === name);
  }

  /**
   * The workloads of a namespace, sorted by name. The first call starts the namespace's watches
   * and answers with what is known so far (a change notification follows when more arrives).
   */
  workloads(namespace: string): WorkloadView[] {
    const ns = this.#watchNamespace(namespace);
    if (ns === undefined) return [];
    const services = (ns.objects.get('Service') ?? []) as ServiceObject[];
    const listed = new Map((ns.listed ?? []).map((w) => [`${w.kind}/${w.name}`, w]));
    const views: WorkloadView[] = [];
    for (const kind of WORKLOAD_KINDS) {
      for (const obj of (ns.objects.get(kind) ?? []) as WorkloadObject[]) {
        // A ReplicaSet owned by a Deployment shows as its Deployment (as `list` does).
        if (kind === 'ReplicaSet' && (obj.metadata?.ownerReferences ?? []).some((o) => o.controller === true)) continue;
        const name = obj.metadata?.name ?? '';
        const info = listed.get(`${kind}/${name}`);
        const containerEnv = new Map<string, Record<string, string>>();
        for (const c of obj.spec?.template?.spec?.containers ?? []) {
          const env: Record<string, string> = {};
          for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
          containerEnv.set(c.name, env);
        }
        views.push({
          namespace,
          name,
          kind,
          readyReplicas: obj.status?.readyReplicas ?? 0,
          replicas: obj.spec?.replicas ?? 1,
          agentState: info?.agentState ?? 'unknown',
          ports: interceptablePorts(obj, services),
          intercepts: info?.intercepts ?? [],
          containerEnv,
        });
      }
    }
    return views.sort((a, b) => a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
  }

  /** Stops following the daemon and the cluster; the daemon keeps running. */
  dispose(): void {
    const daemon = this.#daemon;
    this.#unfollow();
    daemon?.close();
    this.#listeners.clear();
  }

  async #follow(daemon: DaemonApi): Promise<void> {
    const { daemonVersion } = await daemon.version();
    if (daemonVersion !== this.#deps.version) {
      daemon.close();
      throw new TpError('config', 'daemon-version-mismatch', `the running daemon is v${daemonVersion} but this extension is v${this.#deps.version}`, {
        hint: 'stop it with Telepresence: Disconnect (or `kubectl telepresence quit`), which ends its intercepts, then Connect again',
      });
    }
    this.#daemon = daemon;
    this.#stopWatchState = daemon.watchState(
      (snap) => this.#onSnapshot(snap),
      (err) => {
        if (err !== undefined) this.#deps.log(`the daemon's state stream ended: ${err.message}`);
        this.#unfollow();
        daemon.close();
        this.#changed();
      },
    );
  }

  #unfollow(): void {
    this.#stopWatchState?.();
    this.#stopWatchState = undefined;
    this.#daemon = undefined;
    this.#connection = undefined;
    this.#intercepts = [];
    this.#remotes = [];
    this.#phase = this.#phase === 'no-manager' ? 'no-manager' : 'disconnected';
    this.#stopWatches();
  }

  #onSnapshot(snap: StateSnapshot): void {
    this.#intercepts = snap.intercepts;
    // A daemon of an older contract sends no remotes.
    this.#remotes = snap.remotes ?? [];
    if (snap.connection !== undefined) this.#applyConnection(snap.connection);
    // Agent and intercept changes reach us only as snapshots: list the watched namespaces again.
    for (const ns of this.#byNamespace.keys()) this.#relist(ns);
    this.#changed();
  }

  #applyConnection(status: ConnectionStatus): void {
    this.#connection = status;
    if (status.state === ConnectionState.CONNECTED) {
      this.#phase = 'connected';
      if (this.#watchedContext !== `${status.context}/${status.sessionId}`) {
        this.#stopWatches();
        this.#watchedContext = `${status.context}/${status.sessionId}`;
        void this.#startWatches(status);
      }
    } else {
      if (status.state === ConnectionState.CONNECTING) this.#phase = 'connecting';
      else if (this.#phase !== 'no-manager') this.#phase = 'disconnected';
      this.#stopWatches();
    }
  }

  async #startWatches(status: ConnectionStatus): Promise<void> {
    const generation = ++this.#generation;
    try {
      const watcher = await this.#deps.createWatcher({ ...this.#deps.kubeFlags(), context: status.context });
      if (generation !== this.#generation) {
        watcher.close?.();
        return;
      }
      this.#watcher = watcher;
      this.#stopNamespaces = watcher.watch('Namespace', undefined, {
        onObjects: (objects) => {
          this.#namespaces = objects.map((o) => o.metadata?.name ?? '').filter((n) => n !== '').sort();
          this.#changed();
        },
        onError: (err) => {
          // Without the right to list namespaces, the connection's namespace is all there is.
          this.#deps.log(`${err.message}${err.code === 'kube-forbidden' ? ' (showing only the connected namespace)' : ''}`);
          if (err.code === 'kube-forbidden') {
            this.#stopNamespaces?.();
            this.#stopNamespaces = undefined;
          }
        },
      });
      this.#changed();
    } catch (err: unknown) {
      this.#deps.log(`cannot watch the cluster: ${toTpError(err).message}`);
    }
  }

  #stopWatches(): void {
    this.#generation++;
    this.#stopNamespaces?.();
    this.#stopNamespaces = undefined;
    for (const ns of this.#byNamespace.values()) for (const stop of ns.stops) stop();
    this.#byNamespace.clear();
    this.#namespaces = [];
    this.#watcher?.close?.();
    this.#watcher = undefined;
    this.#watchedContext = '';
  }

  #watchNamespace(namespace: string): NamespaceState | undefined {
    const existing = this.#byNamespace.get(namespace);
    if (existing !== undefined || this.#watcher === undefined) return existing;
    const watcher = this.#watcher;
    const state: NamespaceState = { objects: new Map(), listed: undefined, stops: [], listing: false, listAgain: false };
    this.#byNamespace.set(namespace, state);
    for (const kind of [...WORKLOAD_KINDS, 'Service'] as const) {
      state.stops.push(
        watcher.watch(kind, namespace, {
          onObjects: (objects) => {
            state.objects.set(kind, objects);
            this.#changed();
          },
          onError: (err) => this.#deps.log(err.message),
        }),
      );
    }
    this.#relist(namespace);
    return state;
  }

  /** Asks the daemon for the namespace's agent and intercept state; one call at a time, coalesced. */
  #relist(namespace: string): void {
    const state = this.#byNamespace.get(namespace);
    const daemon = this.#daemon;
    if (state === undefined || daemon === undefined || this.#phase !== 'connected') return;
    if (state.listing) {
      state.listAgain = true;
      return;
    }
    state.listing = true;
    daemon.list(namespace).then(
      (res) => {
        state.listed = res.workloads;
        this.#changed();
      },
      (err: unknown) => this.#deps.log(`listing namespace ${namespace}: ${toTpError(err).message}`),
    ).finally(() => {
      state.listing = false;
      if (state.listAgain) {
        state.listAgain = false;
        this.#relist(namespace);
      }
    });
  }
}
