/**
 * The intercepts this workstation owns: making one (prepare, create, its environment and
 * volumes, the files asked for), removing one, following the manager's view of them, and
 * making them again on a manager that lost them (see SessionKeeper's recovery).
 */
import type { InterceptRemote, LostIntercept } from '@telepresence-ts/proto/daemon/v1';
import type { InterceptEnvironment, InterceptInfo, InterceptSnapshot, InterceptSpec } from '@telepresence-ts/proto/manager/v1';
import { writeFileSync } from 'node:fs';
import { systemClock, type Clock } from '../clock.js';
import type { InterceptOptions } from '../daemon-client.js';
import { engagementMode, isReplace, replaceLocalPort, takesTraffic } from '../engagement.js';
import { TpError, toTpError } from '../errors.js';
import { unary } from '../grpc-call.js';
import { fromServiceError } from '../wire-errors.js';
import { checkInterceptRequest, checkOutputFiles } from './local-inputs.js';
import type { Logger } from './logger.js';
import type { ActiveMount, Mounter, PreparedMount } from './mounts.js';
import { formatDotenv, formatEnvJson, localEnvironment } from './remote-env.js';
import { callOptions, managerUnavailable, pause, type Session, type SessionKeeper } from './session-keeper.js';

/** An intercept's environment and mount, while it lasts. */
interface Remote {
  readonly remote: InterceptRemote;
  readonly mount: ActiveMount | undefined;
}

/**
 * How long an intercept waits for streams to be parked at its agent before it returns: they
 * usually are within tens of milliseconds; a pod that cannot be port-forwarded to says so at once.
 */
const DIRECT_READY_WAIT_MS = 2_000;
/** How long to wait for an agent of the workload to report its environment after create. */
const ENVIRONMENT_WAIT_MS = 15_000;
const ENVIRONMENT_POLL_MS = 500;

export interface InterceptFlowDeps {
  readonly keeper: Pick<SessionKeeper, 'managerCall' | 'agents'>;
  readonly log: Logger;
  /** Mounts remote volumes; without it, an intercept that asks for a mount is refused. */
  readonly mounter?: Mounter;
  readonly clock?: Clock;
  /** Our intercepts, their environments or losses changed. */
  readonly changed: () => void;
}

/**
 * Tries at making one intercept again after the manager lost it, before it is reported lost: the
 * recovery's backoff spaces them (up to 5 s), so a failure that lasts longer than about 15 s is
 * one that a user must hear about.
 */
export const RESTORE_ATTEMPTS = 5;

/**
 * The workstation ports an engagement's connections go to: an intercept's (or wiretap's) one, each
 * of a replace's `ports` (before its prepare, only those named), none for an ingest.
 */
export function localPortsOf(spec: Pick<InterceptSpec, 'mode' | 'localPort' | 'ports'>): number[] {
  if (isReplace(spec)) return spec.ports.map((p) => p.localPort);
  return takesTraffic(spec) ? [spec.localPort] : [];
}

export class InterceptFlow {
  private readonly deps: InterceptFlowDeps;
  private readonly clock: Clock;
  /** Our intercepts by spec.name. */
  private readonly intercepts = new Map<string, InterceptInfo>();
  /** Local ports of intercepts being created, so two concurrent intercepts cannot both take one. */
  private readonly pendingPorts = new Set<number>();
  /** Ids of our intercepts that a WatchIntercepts snapshot has shown. */
  private readonly seenIntercepts = new Set<string>();
  /** Our intercepts that a recovery could not create again, by spec.name (see LostIntercept). */
  private readonly lost = new Map<string, LostIntercept>();
  /** Environment and mount of each of our intercepts, by spec.name. */
  private readonly remotes = new Map<string, Remote>();
  /** The arrival again (Session.arrivedAgain) that restore() is making our intercepts again for. */
  private restoring = -1;
  /** Our intercepts made again on that arrival, by spec.name. */
  private readonly restored = new Set<string>();
  /** Failed attempts to make each of them again on that arrival. */
  private readonly restoreFailures = new Map<string, number>();

  constructor(deps: InterceptFlowDeps) {
    this.deps = deps;
    this.clock = deps.clock ?? systemClock;
  }

  /** Our intercepts, in the order they were made. */
  list(): InterceptInfo[] {
    return [...this.intercepts.values()];
  }

  /** The environments of our intercepts. */
  remoteList(): InterceptRemote[] {
    return [...this.remotes.values()].map((r) => r.remote);
  }

  /** The environment and mount of our intercept `name`, once it is set up. */
  remoteOf(name: string): InterceptRemote | undefined {
    return this.remotes.get(name)?.remote;
  }

  lostList(): LostIntercept[] {
    return [...this.lost.values()];
  }

  /** The connection's error line while intercepts are lost, empty otherwise. */
  lostSummary(): string {
    return this.lost.size === 0 ? '' : `intercepts lost after the traffic-manager restarted: ${[...this.lost.keys()].join(', ')}`;
  }

  /** The local port of our intercept with this id. */
  /** Whether our intercept `id` is a wiretap (its tunnels carry copies, core/src/copy-frames.ts). */
  isWiretap(id: string): boolean {
    return this.list().find((ii) => ii.id === id)?.spec?.mode === 'wiretap';
  }

  localPortOf(id: string, containerPort?: number): number | undefined {
    const ii = this.list().find((x) => x.id === id);
    if (ii?.spec === undefined) return undefined;
    // A replace sends each of its container's ports to a local port of its own (the target's
    // when the agent named none).
    if (isReplace(ii.spec)) return replaceLocalPort(ii.spec, containerPort ?? ii.target?.containerPort ?? 0);
    return ii.spec.localPort;
  }

  /**
   * Prepare (streaming `progress`), then create, then bring the container's environment (and, when
   * asked, its volumes) to the workstation; resolves with the created intercept, whose environment
   * and mount `remoteOf` then gives. A failure after create removes the intercept again.
   */
  async intercept(s: Session, requested: InterceptSpec, progress: (line: string) => void, options: InterceptOptions = {}): Promise<InterceptInfo> {
    checkInterceptRequest(requested);
    const namespace = requested.namespace !== '' ? requested.namespace : s.conn.target.namespace;
    const traffic = takesTraffic(requested);
    // Other modes have names of their own by default (`-ingest`, `-wiretap`, `-replace`): the
    // workstation may intercept the same workload beside them.
    const mode = engagementMode(requested);
    const name = requested.name !== '' ? requested.name : `${requested.workloadName}-${namespace}${mode === 'intercept' ? '' : `-${mode}`}`;
    if (this.intercepts.has(name)) {
      throw new TpError('user', 'intercept-exists', `there is already an intercept named ${name}`, { hint: `run \`kubectl telepresence leave ${name}\` first, or pass --name` });
    }
    // A replace's ports that keep their number are known after its prepare only (see below).
    const wantedPorts = localPortsOf(requested);
    for (const port of wantedPorts) {
      const holder = this.list().find((ii) => ii.spec !== undefined && localPortsOf(ii.spec).includes(port));
      if (holder !== undefined || this.pendingPorts.has(port)) {
        throw new TpError('user', 'local-port-in-use', `local port ${port} already receives intercept ${holder?.spec?.name ?? '(being created)'}`, {
          hint: holder !== undefined ? `choose another --port, or run \`kubectl telepresence leave ${holder.spec?.name ?? ''}\`` : 'choose another --port',
        });
      }
    }
    // Every local input is checked before the cluster is touched: a file that cannot be written
    // found after the rollout would leave the workload restarted for nothing.
    checkOutputFiles(options);
    // Checked before the cluster is touched, so that a bad mount point changes nothing.
    let mountAt: PreparedMount | undefined;
    if (options.mount === true) {
      if (this.deps.mounter === undefined) throw new TpError('internal', 'mount-unavailable', 'this daemon cannot mount remote volumes', { hint: 'pass --mount=false' });
      mountAt = await this.deps.mounter.prepare(name, options.mountPoint);
    }
    // A replace has a local port per container port (`ports`), none of its own.
    const spec: InterceptSpec = { ...requested, name, namespace, ...(traffic && !isReplace(requested) ? {} : { localPort: 0 }) };
    for (const port of wantedPorts) this.pendingPorts.add(port);
    this.lost.delete(name);
    let created = false;
    try {
      const info = await this.prepareAndCreate(s, spec, progress);
      this.intercepts.set(name, info);
      created = true;
      this.deps.log('info', `intercept ${info.id} created`);
      if (info.spec !== undefined && isReplace(info.spec)) this.noteSharedPorts(info, wantedPorts, progress);
      if (!traffic) {
        // Nothing to tunnel: the environment and volumes are all an ingest brings.
        const remote = await this.bringRemote(s, info, mountAt, options, progress);
        this.remotes.set(name, { ...remote, remote: { ...remote.remote, traffic: 'none', trafficReason: 'an ingest takes no traffic' } });
        this.deps.changed();
        return info;
      }
      // Streams are parked at the agent while the environment and volumes come.
      s.direct?.update(this.deps.keeper.agents, this.list());
      const direct = s.direct?.ready(namespace, spec.workloadName, DIRECT_READY_WAIT_MS);
      const remote = await this.bringRemote(s, info, mountAt, options, progress);
      const path = (await direct) ?? { direct: false, reason: 'not connected' };
      if (!path.direct) this.deps.log('info', `intercept ${info.id}: connections are relayed by the traffic-manager (${path.reason})`);
      this.remotes.set(name, { ...remote, remote: { ...remote.remote, traffic: path.direct ? 'direct' : 'relayed', trafficReason: path.reason } });
      this.deps.changed();
      return info;
    } catch (err: unknown) {
      if (created) {
        // Nothing half-applied: the intercept goes again when its environment or volumes fail.
        await this.leave(s, name).catch((e: unknown) => this.deps.log('warn', `removing intercept ${name} after a failure: ${toTpError(e).message}`));
      } else if (mountAt !== undefined) {
        this.deps.mounter?.release(mountAt);
      }
      throw err;
    } finally {
      for (const port of wantedPorts) this.pendingPorts.delete(port);
    }
  }

  /**
   * Says which ports of a created replace, not named with --port (they keep their number), also
   * receive another of our intercepts: both then reach whatever listens there. Not refused, as the
   * ports named are: the container's ports are known only once the workload has restarted.
   */
  private noteSharedPorts(info: InterceptInfo, named: readonly number[], progress: (line: string) => void): void {
    for (const port of localPortsOf(info.spec!)) {
      if (named.includes(port)) continue;
      const other = this.list().find((ii) => ii !== info && ii.spec !== undefined && ii.spec.name !== info.spec?.name && localPortsOf(ii.spec).includes(port));
      if (other !== undefined) progress(`note: local port ${port} also receives intercept ${other.spec?.name ?? ''}; pass --port <another local port>:${port} to keep them apart`);
    }
  }

  /** PrepareIntercept (streaming its progress), then CreateIntercept with the prepared spec. */
  private async prepareAndCreate(s: Session, spec: InterceptSpec, progress: (line: string) => void, inRecovery = false): Promise<InterceptInfo> {
    const keeper = this.deps.keeper;
    const prepared = await keeper.managerCall(
      s,
      async (mgr, session) => {
        const stream = mgr.prepareIntercept({ session, spec });
        let result: InterceptSpec | undefined;
        try {
          for await (const event of stream as AsyncIterable<{ progress?: string; prepared?: { spec?: InterceptSpec } }>) {
            if (event.progress !== undefined) {
              progress(event.progress);
            } else if (event.prepared !== undefined) {
              result = event.prepared.spec;
            }
          }
        } catch (err: unknown) {
          throw fromServiceError(err, { unavailable: managerUnavailable });
        }
        return result;
      },
      inRecovery,
    );
    if (prepared === undefined) {
      throw new TpError('internal', 'prepare-incomplete', `the traffic-manager ended the prepare of ${spec.name} without a result`);
    }
    return keeper.managerCall(s, (mgr, session) => unary(mgr.createIntercept.bind(mgr), { session, spec: prepared }, callOptions()), inRecovery);
  }

  /** The container's environment from its agent, the volumes mounted, the files written. */
  private async bringRemote(s: Session, info: InterceptInfo, mountAt: PreparedMount | undefined, options: InterceptOptions, progress: (line: string) => void): Promise<Remote> {
    const name = info.spec?.name ?? '';
    const env = await this.fetchEnvironment(s, name);
    let mount: ActiveMount | undefined;
    if (mountAt !== undefined && this.deps.mounter !== undefined) {
      const mounter = this.deps.mounter;
      if (env.mounts.length === 0) {
        // Nothing to mount: the container has no volumes.
        mounter.release(mountAt);
      } else if (env.sftpPort === 0) {
        mounter.release(mountAt);
        throw new TpError('cluster', 'no-volume-server', `the traffic-agent of ${env.namespace}/${env.podName} does not serve the container's volumes`, {
          hint: `see its log (kubectl -n ${env.namespace} logs ${env.podName} -c traffic-agent), or pass --mount=false`,
        });
      } else {
        // The port-forward reports its own failure (e.g. no pods/portforward right in the
        // workload's namespace) apart from sshfs, which only sees the connection drop.
        let forwardError: string | undefined;
        const forward = await s.conn.kube.portForward(env.namespace, env.podName, env.sftpPort, (err) => {
          forwardError ??= err.message;
          this.deps.log('warn', `volume port-forward of ${name}: ${err.message}`);
        });
        try {
          mount = await mounter.mount(name, mountAt, env.mountRoot, forward.localPort, () => forward.close(), options.mountAllowOther === true);
        } catch (err: unknown) {
          await forward.close();
          mounter.release(mountAt);
          // The traffic is what an intercept is for: without the volumes it still works, so a
          // mount that fails in the cluster is reported, not fatal. (A bad mount point or a
          // missing sshfs was refused above, before the cluster was touched.)
          const reason = forwardError ?? toTpError(err).message;
          this.deps.log('warn', `intercept ${name} goes on without its volumes: ${reason}`);
          progress(`Volumes not mounted: ${reason}`);
          progress(`  (the intercept works without them; check pods/portforward rights in ${env.namespace}, or pass --mount=false)`);
        }
      }
    }
    try {
      const environment = localEnvironment(env.env, { interceptId: info.id, containerName: env.containerName, mountPoint: mount?.dir ?? '', mounts: env.mounts });
      const envFile = options.envFile ?? '';
      const envJson = options.envJson ?? '';
      // Secrets: readable by the user alone.
      if (envFile !== '') writeFileSync(envFile, formatDotenv(environment), { mode: 0o600 });
      if (envJson !== '') writeFileSync(envJson, formatEnvJson(environment), { mode: 0o600 });
      return { remote: { name, environment, mountPoint: mount?.dir ?? '', mounts: env.mounts, envFile, envJson, traffic: '', trafficReason: '' }, mount };
    } catch (err: unknown) {
      if (mount !== undefined) await this.deps.mounter?.unmount(mount);
      throw new TpError('user', 'env-file-unwritable', `cannot write the environment: ${(err as Error).message}`, { hint: 'check the --env-file / --env-json path', cause: err });
    }
  }

  /** GetInterceptEnvironment, waiting a little for an agent to be in session (it arrives after its pod is ready). */
  private async fetchEnvironment(s: Session, name: string): Promise<InterceptEnvironment> {
    const deadline = this.clock.now() + ENVIRONMENT_WAIT_MS;
    for (;;) {
      try {
        return await this.deps.keeper.managerCall(s, (mgr, session) => unary(mgr.getInterceptEnvironment.bind(mgr), { session, name }, callOptions()));
      } catch (err: unknown) {
        if (toTpError(err).code !== 'no-agent' || this.clock.now() > deadline) throw err;
      }
      await pause(this.clock, ENVIRONMENT_POLL_MS);
    }
  }

  /** Unmounts the intercept's volumes (if any) and forgets its environment. */
  private async dropRemote(name: string): Promise<void> {
    const r = this.remotes.get(name);
    if (r === undefined) return;
    this.remotes.delete(name);
    if (r.mount !== undefined) {
      try {
        await this.deps.mounter?.unmount(r.mount);
        this.deps.log('info', `unmounted the volumes of ${name} from ${r.mount.dir}`);
      } catch (err: unknown) {
        this.deps.log('warn', `unmounting ${r.mount.dir}: ${toTpError(err).message}`);
      }
    }
  }

  /** Removes our intercept `name` from the manager and its environment and volumes from here. */
  async leave(s: Session, name: string): Promise<void> {
    if (!this.intercepts.has(name)) {
      const ours = [...this.intercepts.keys()];
      throw new TpError('user', 'unknown-intercept', `there is no intercept named ${name}`, {
        hint: ours.length > 0 ? `intercepts: ${ours.join(', ')}` : 'run `kubectl telepresence list` to see the intercepts',
      });
    }
    try {
      await this.deps.keeper.managerCall(s, (mgr, session) => unary(mgr.removeIntercept.bind(mgr), { session, name }, callOptions()));
    } finally {
      // The local half goes whatever the manager says: a mount must not outlive `leave`.
      await this.dropRemote(name);
    }
    this.seenIntercepts.delete(this.intercepts.get(name)?.id ?? '');
    this.intercepts.delete(name);
    this.deps.changed();
  }

  /** A WatchIntercepts snapshot: our intercepts as the manager has them now. */
  onSnapshot(s: Session, snap: InterceptSnapshot): void {
    const present = new Set(snap.intercepts.map((ii) => ii.id));
    for (const ii of snap.intercepts) {
      const name = ii.spec?.name ?? '';
      if (ii.clientSessionId === s.info.sessionId && this.intercepts.has(name)) {
        this.intercepts.set(name, ii);
        this.seenIntercepts.add(ii.id);
      }
    }
    // Removed on the manager's side (an agent uninstalled, an admin): forget it too. Only ids a
    // snapshot has shown before, so that a snapshot older than our CreateIntercept cannot drop one.
    for (const [name, ii] of this.intercepts) {
      if (this.seenIntercepts.has(ii.id) && !present.has(ii.id)) {
        this.deps.log('info', `intercept ${ii.id} was removed by the traffic-manager`);
        this.intercepts.delete(name);
        void this.dropRemote(name).then(() => this.deps.changed());
        this.seenIntercepts.delete(ii.id);
      }
    }
    this.deps.changed();
  }

  /**
   * Creates this workstation's intercepts again on a manager that lost them, from the specs they
   * were made with: the agents and their configuration are still in the cluster, so no workload
   * restarts. Environments and mounts stay as they are. An intercept the manager refuses (its
   * workload was deleted, say: a user or config error) is dropped and reported in
   * `lostIntercepts`. Any other failure (the manager going away again, a deadline, a cluster error
   * that may pass) is thrown, for the recovery to try again; the intercepts already made again on
   * this arrival are not made twice, and one that keeps failing is reported lost after
   * RESTORE_ATTEMPTS tries.
   */
  async restore(s: Session): Promise<void> {
    // A snapshot taken before our intercepts exist again must not read as their removal.
    if (this.restoring !== s.arrivedAgain) {
      this.restoring = s.arrivedAgain;
      this.restored.clear();
      this.restoreFailures.clear();
      this.seenIntercepts.clear();
    }
    for (const [name, old] of [...this.intercepts]) {
      const spec = old.spec;
      if (spec === undefined || this.restored.has(name) || this.intercepts.get(name) !== old) continue;
      try {
        const info = await this.prepareAndCreate(s, spec, (line) => this.deps.log('debug', `restoring ${name}: ${line}`), true);
        this.intercepts.set(name, info);
        this.restored.add(name);
        this.deps.log('info', `intercept ${info.id} restored`);
        this.deps.changed();
      } catch (err: unknown) {
        const e = toTpError(err);
        const failures = (this.restoreFailures.get(name) ?? 0) + 1;
        this.restoreFailures.set(name, failures);
        const refused = e.category === 'user' || e.category === 'config';
        if (!refused && failures < RESTORE_ATTEMPTS) {
          this.deps.log('warn', `intercept ${name} not restored yet (attempt ${failures} of ${RESTORE_ATTEMPTS}): ${e.message}`);
          throw err;
        }
        this.deps.log('warn', `intercept ${name} could not be restored: ${e.message}`);
        this.intercepts.delete(name);
        await this.dropRemote(name);
        this.lost.set(name, { name, reason: e.hint !== undefined && e.hint !== '' ? `${e.message} (${e.hint})` : e.message });
        this.deps.changed();
      }
    }
  }

  /** Unmounts every volume and forgets every intercept (the connection is closing). */
  async dropAll(): Promise<void> {
    await Promise.all([...this.remotes.keys()].map((name) => this.dropRemote(name)));
  }

  /** Reports intercepts as ended under us (the connection had to close), with why. */
  markLost(names: readonly string[], reason: string): void {
    for (const name of names) this.lost.set(name, { name, reason });
  }

  /** Forgets our intercepts and their losses (the connection is closed). */
  clear(): void {
    this.intercepts.clear();
    this.lost.clear();
  }
}
