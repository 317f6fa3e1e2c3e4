/**
 * The network daemon's centre: brings outbound access up for one Outbound call and takes it down
 * again however that call ends. It decides the order of the steps, what to undo when one fails
 * and what to tell the caller; the privileged work goes through the `NetworkSystem` port and the
 * packet engine through `EngineSpawner`. No gRPC here (server.ts maps the service onto this).
 */
import type { OutboundConfig, OutboundReady, VersionResponse } from '@telepresence-ts/proto/network/v1';
import { TpError, toTpError } from '../errors.js';
import { formatCidr, tryParseCidr, type Cidr } from '../outbound/cidr.js';
import { parseResolvConf } from '../outbound/resolv-conf.js';
import type { Logger } from '../daemon/logger.js';
import type { ProcessExit } from '../process/process-runner.js';
import type { EngineProcess, EngineSpawner } from './engine.js';
import { firstFreeDevice, isOurDevice, type NetworkSystem } from './network-system.js';

/**
 * The device's MTU when the caller leaves it 0. Measured: gVisor's stack is CPU-bound at MTU 1500
 * (~110 MB/s, 2 CPU-s per 200 MB); at 65000 it moves ~450 MB/s for an eighth of the CPU.
 */
export const DEFAULT_MTU = 65000;
/** IPv6 requires links of at least 1280 bytes; a TUN device carries at most 65535. */
export const MIN_MTU = 1280;
export const MAX_MTU = 65535;
/** The engine attaches in milliseconds; five seconds means it is stuck (or a slow disk loads it). */
export const ENGINE_READY_TIMEOUT_MS = 5_000;

export type PathKind = 'socket' | 'missing' | 'other';

/** Who the daemon serves: the socket's owner, as whom the engine runs. */
export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface NetworkDaemonDeps {
  readonly system: NetworkSystem;
  readonly spawnEngine: EngineSpawner;
  /** The engine binary (absolute). */
  readonly enginePath: string;
  readonly owner: Owner;
  readonly version: string;
  readonly log: Logger;
  /** The text of /etc/resolv.conf. */
  readonly readResolvConf: () => Promise<string>;
  /** What is at a path (the flow socket must be a socket). */
  readonly pathKind: (path: string) => Promise<PathKind>;
  /** Overrides ENGINE_READY_TIMEOUT_MS (tests). */
  readonly engineReadyTimeoutMs?: number;
}

/** What Outbound reports while it brings access up. */
export interface OutboundListener {
  progress(line: string): void;
  ready(ready: OutboundReady): void;
}

/** An OutboundConfig that passed validation: subnets parsed, defaults applied. */
export interface ValidOutboundConfig {
  readonly subnets: readonly Cidr[];
  readonly flowSocket: string;
  readonly dnsPort: number;
  readonly dnsUpstreamPort: number;
  readonly mtu: number;
}

function badConfig(message: string, hint: string): TpError {
  return new TpError('user', 'bad-outbound-config', message, { hint });
}

const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;

/** Checks a config before anything changes; throws `bad-outbound-config` naming the field. */
export async function validateOutboundConfig(config: OutboundConfig, pathKind: (path: string) => Promise<PathKind>): Promise<ValidOutboundConfig> {
  const subnets: Cidr[] = [];
  for (const text of config.subnets) {
    const cidr = tryParseCidr(text);
    if (cidr === undefined) throw badConfig(`subnet ${JSON.stringify(text)} is not a CIDR`, 'give subnets such as 10.96.0.0/12 or fd00::/108');
    if (!subnets.some((s) => formatCidr(s) === formatCidr(cidr))) subnets.push(cidr);
  }
  if (!config.flowSocket.startsWith('/')) {
    throw badConfig(`flow socket ${JSON.stringify(config.flowSocket)} is not an absolute path`, 'pass the absolute path of the user daemon flow socket');
  }
  const kind = await pathKind(config.flowSocket);
  if (kind !== 'socket') {
    throw badConfig(`flow socket ${config.flowSocket} ${kind === 'missing' ? 'does not exist' : 'is not a socket'}`, 'start the flow server before asking for outbound access');
  }
  if (config.dnsPort !== 0) {
    if (!isPort(config.dnsPort)) throw badConfig(`DNS port ${config.dnsPort} is out of range`, 'give a UDP port from 1 to 65535, or 0 for no DNS redirect');
    // Without an exempt upstream port the resolver's own questions would come back to it: a loop
    // that breaks every lookup on the machine.
    if (!isPort(config.dnsUpstreamPort) || config.dnsUpstreamPort === config.dnsPort) {
      throw badConfig(`DNS upstream port ${config.dnsUpstreamPort} is not a usable port`, 'give the UDP port the resolver asks its upstream nameservers from (1 to 65535, not the DNS port)');
    }
  }
  const mtu = config.mtu === 0 ? DEFAULT_MTU : config.mtu;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw badConfig(`MTU ${config.mtu} is out of range`, `give ${MIN_MTU} to ${MAX_MTU}, or 0 for ${DEFAULT_MTU}`);
  }
  return { subnets, flowSocket: config.flowSocket, dnsPort: config.dnsPort, dnsUpstreamPort: config.dnsUpstreamPort, mtu };
}

/** The steps of bring-up, named in errors. */
type Step = 'device' | 'engine' | 'routes' | 'dns';

const STEP_FAILURE: Readonly<Record<Step, { code: string; what: string; hint: string }>> = {
  device: {
    code: 'outbound-device-failed',
    what: 'cannot create the network device',
    hint: 'check that the tun module is loaded (`modprobe tun`) and that `ip tuntap` works as root',
  },
  engine: {
    code: 'outbound-engine-failed',
    what: 'the packet engine did not start',
    hint: 'see the network daemon log; reinstall telepresence-ts if the engine binary is missing or broken',
  },
  routes: {
    code: 'outbound-route-failed',
    what: 'cannot route a cluster subnet into the device',
    hint: 'a route for the same subnet may exist already (see `ip route`): remove it, or leave the subnet out of outbound access',
  },
  dns: {
    code: 'outbound-dns-failed',
    what: 'cannot redirect DNS to the resolver',
    hint: "iptables' nat table must work here: try `sudo iptables -t nat -S`",
  },
};

function stepError(step: Step, err: unknown): TpError {
  const tp = toTpError(err);
  // A TpError made for this step (e.g. the engine's own) passes through unchanged.
  if (tp.code === STEP_FAILURE[step].code || tp.category !== 'internal') return tp;
  const f = STEP_FAILURE[step];
  return new TpError('config', f.code, `${f.what}: ${tp.message}`, { hint: f.hint, cause: err });
}

function describeExit(exit: ProcessExit): string {
  if (exit.startError !== undefined) return `could not start (${exit.startError.code ?? exit.startError.message})`;
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${String(exit.exitCode)}`;
}

function lastLines(text: string, n = 5): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

function cancelled(): TpError {
  return new TpError('user', 'outbound-cancelled', 'the caller ended the Outbound call before outbound access was up');
}

/** Resolves when the signal aborts (at once if it has). */
function onAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

interface Session {
  readonly stop: AbortController;
  /** Settles once everything the session set up is gone again. */
  readonly finished: Promise<void>;
}

interface Undo {
  readonly what: string;
  readonly run: () => Promise<void>;
}

/** One network daemon: at most one outbound session at a time. */
export class NetworkDaemon {
  private session: Session | undefined;

  constructor(private readonly deps: NetworkDaemonDeps) {}

  version(): VersionResponse {
    return { version: this.deps.version, ownerUid: this.deps.owner.uid };
  }

  /**
   * Removes what a daemon that crashed (or was SIGKILLed) left behind: its TUN devices would keep
   * routing cluster subnets into nothing, and its iptables chain would keep sending every DNS
   * question of the machine to a resolver that is gone. A live daemon of ours never leaves these
   * between sessions, so any `tpts*` device or TPTS-DNS chain found while no session is up is a
   * leftover. (One network daemon per network namespace, then.) Returns what it removed.
   */
  async removeLeftovers(): Promise<string[]> {
    const { system, log } = this.deps;
    const removed: string[] = [];
    try {
      if (await system.removeDnsRedirect()) removed.push('DNS redirect');
    } catch (err: unknown) {
      log('warn', `could not remove a leftover DNS redirect: ${toTpError(err).message}`);
    }
    let devices: string[] = [];
    try {
      devices = (await system.listDevices()).filter(isOurDevice);
    } catch (err: unknown) {
      log('warn', `could not list network devices: ${toTpError(err).message}`);
    }
    for (const name of devices) {
      try {
        await system.deleteDevice(name);
        removed.push(name);
      } catch (err: unknown) {
        log('warn', `could not remove leftover device ${name}: ${toTpError(err).message}`);
      }
    }
    if (removed.length > 0) log('info', `removed leftovers of an earlier network daemon: ${removed.join(', ')}`);
    return removed;
  }

  /**
   * Brings outbound access up, reports `ready`, and keeps it up until `signal` aborts (the call
   * ended), `shutdown()` is called, or the engine exits. Everything is taken down before this
   * settles. Resolves when the caller or shutdown ended it; rejects with a TpError when bring-up
   * failed (after undoing each step done) or the engine exited on its own.
   */
  async outbound(config: OutboundConfig, listener: OutboundListener, signal?: AbortSignal): Promise<void> {
    // A session whose caller has gone is being torn down: wait for that rather than refuse, so
    // that a reconnect right after a disconnect works.
    while (this.session !== undefined) {
      if (!this.session.stop.signal.aborted) {
        throw new TpError('user', 'outbound-busy', 'outbound access is already up for another connection of this workstation', {
          hint: 'run `kubectl telepresence quit` to end the other connection first',
        });
      }
      await this.session.finished.catch(() => undefined);
    }
    const stop = new AbortController();
    let finish: () => void = () => undefined;
    const session: Session = { stop, finished: new Promise<void>((resolve) => (finish = resolve)) };
    this.session = session;
    const forward = (): void => stop.abort();
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted === true) stop.abort();
    try {
      await this.run(config, listener, stop.signal);
    } finally {
      signal?.removeEventListener('abort', forward);
      this.session = undefined;
      finish();
    }
  }

  /** Ends the current session, if any, and waits until it is taken down. */
  async shutdown(): Promise<void> {
    const session = this.session;
    if (session === undefined) return;
    session.stop.abort();
    await session.finished;
  }

  private async run(config: OutboundConfig, listener: OutboundListener, stop: AbortSignal): Promise<void> {
    const { system, log, owner } = this.deps;
    const valid = await validateOutboundConfig(config, this.deps.pathKind);
    await this.removeLeftovers();

    const undo: Undo[] = [];
    const step = async <T>(name: Step, body: () => Promise<T>): Promise<T> => {
      if (stop.aborted) throw cancelled();
      try {
        return await body();
      } catch (err: unknown) {
        throw stepError(name, err);
      }
    };

    let engine: EngineProcess | undefined;
    let ready: OutboundReady;
    try {
      const device = await step('device', async () => {
        // No check of /dev/net/tun's mode: the engine opens it as root before dropping to the
        // owner, so a 0600 clone device is no obstacle. A host without the TUN driver fails
        // right below, at `ip tuntap add`, with the kernel's own message.
        const name = firstFreeDevice(await system.listDevices());
        listener.progress(`creating network device ${name}`);
        await system.createTun(name, owner.uid);
        undo.push({ what: `delete device ${name}`, run: () => system.deleteDevice(name) });
        await system.setUp(name, valid.mtu);
        return name;
      });

      engine = await step('engine', () => this.startEngine(device, valid, undo, stop, listener));

      const routes = await step('routes', async () => {
        const added: string[] = [];
        for (const cidr of valid.subnets) {
          const text = formatCidr(cidr);
          if (stop.aborted) throw cancelled();
          // No undo entry: deleting the device removes its routes.
          await system.addRoute(device, text, cidr.family);
          added.push(text);
        }
        if (added.length > 0) listener.progress(`routing ${added.join(', ')} to ${device}`);
        return added;
      });

      const dnsRedirected = valid.dnsPort === 0 ? [] : await step('dns', () => this.redirectDns(valid, undo, listener));
      ready = { device, routes, dnsRedirected };
    } catch (err: unknown) {
      log('info', `outbound bring-up failed: ${toTpError(err).message}; undoing ${undo.length} step(s)`);
      await this.undoAll(undo);
      throw err;
    }

    log('info', `outbound access up: ${ready.device}, routes ${ready.routes.join(', ') || 'none'}, DNS ${ready.dnsRedirected.join(', ') || 'not redirected'}`);
    listener.ready(ready);
    const ended = await Promise.race([onAbort(stop).then(() => undefined), engine.exited]);
    log('info', ended === undefined ? 'outbound call ended: taking access down' : `the packet engine ${describeExit(ended)}: taking access down`);
    await this.undoAll(undo);
    if (ended !== undefined) {
      throw new TpError('internal', 'engine-exited', `the packet engine ${describeExit(ended)}${engine.stderr() !== '' ? `: ${lastLines(engine.stderr())}` : ''}`, {
        hint: 'outbound access is down; connect again (the network daemon log has the details)',
      });
    }
  }

  private async startEngine(device: string, valid: ValidOutboundConfig, undo: Undo[], stop: AbortSignal, listener: OutboundListener): Promise<EngineProcess> {
    const { owner } = this.deps;
    listener.progress(`starting the packet engine on ${device}`);
    const engine = this.deps.spawnEngine({ command: this.deps.enginePath, device, mtu: valid.mtu, flowSocket: valid.flowSocket, uid: owner.uid, gid: owner.gid });
    undo.push({ what: 'stop the packet engine', run: () => engine.stop() });
    const timeoutMs = this.deps.engineReadyTimeoutMs ?? ENGINE_READY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const first = await Promise.race([engine.ready.then(() => 'ready' as const), engine.exited, timeout, onAbort(stop).then(() => 'cancelled' as const)]);
      if (first === 'ready') return engine;
      if (first === 'cancelled') throw cancelled();
      const f = STEP_FAILURE.engine;
      if (first === 'timeout') {
        throw new TpError('internal', f.code, `${f.what}: no \`ready\` from ${this.deps.enginePath} within ${timeoutMs} ms${engine.stderr() !== '' ? `: ${lastLines(engine.stderr())}` : ''}`, { hint: f.hint });
      }
      if (first.startError?.code === 'ENOENT' || first.startError?.code === 'EACCES') {
        throw new TpError('config', f.code, `${f.what}: ${this.deps.enginePath} ${first.startError.code === 'ENOENT' ? 'does not exist' : 'is not executable'}`, {
          hint: 'reinstall telepresence-ts: the engine belongs next to the CLI, in dist/bin/tp-netstack',
        });
      }
      throw new TpError('internal', f.code, `${f.what}: it ${describeExit(first)}${engine.stderr() !== '' ? `: ${lastLines(engine.stderr())}` : ''}`, { hint: f.hint });
    } finally {
      clearTimeout(timer);
    }
  }

  private async redirectDns(valid: ValidOutboundConfig, undo: Undo[], listener: OutboundListener): Promise<string[]> {
    const { system, log } = this.deps;
    const nameservers = parseResolvConf(await this.deps.readResolvConf()).nameservers;
    const v4 = nameservers.filter((ns) => tryParseCidr(ns)?.family === 4);
    for (const ns of nameservers.filter((n) => !v4.includes(n))) {
      // REDIRECT keeps the family, and the resolver listens on 127.0.0.1 only: an IPv6 question
      // sent to [::1] would find nobody. These nameservers keep answering directly.
      log('info', `not redirecting IPv6 nameserver ${ns}: the resolver listens on IPv4 only`);
    }
    if (v4.length === 0) {
      listener.progress('no IPv4 nameserver in /etc/resolv.conf: DNS is not redirected');
      return [];
    }
    listener.progress(`redirecting DNS for ${v4.join(', ')} to 127.0.0.1:${valid.dnsPort}`);
    // Pushed first: a redirect that fails half-way leaves a chain to remove (removal is idempotent).
    undo.push({ what: 'remove the DNS redirect', run: async () => void (await system.removeDnsRedirect()) });
    await system.addDnsRedirect({ nameservers: v4, dnsPort: valid.dnsPort, upstreamPort: valid.dnsUpstreamPort });
    return v4;
  }

  /** Runs the undo steps newest first; a failing one is logged and the rest still run. */
  private async undoAll(undo: Undo[]): Promise<void> {
    for (const u of undo.splice(0).reverse()) {
      try {
        await u.run();
      } catch (err: unknown) {
        this.deps.log('warn', `could not ${u.what}: ${toTpError(err).message} (the next start removes it)`);
      }
    }
  }
}
