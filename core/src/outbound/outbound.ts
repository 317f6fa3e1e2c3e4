/**
 * Outbound access, as the user daemon runs it (docs/adr/0006-outbound-access.md): after a session
 * with the traffic-manager is open, learn the cluster's subnets, decide what to route, start the
 * flow server (the packet engine's flows become Manager.Outbound streams) and the DNS resolver,
 * then ask the privileged network daemon for the device, routes and DNS redirect. Whatever fails
 * midway is undone before the error reaches the user, and `stop()` takes it all down again.
 *
 * Every piece with I/O sits behind a port, so that this ordering is unit-tested with fakes.
 */
import type { OutboundStatus } from '@telepresence-ts/proto/daemon/v1';
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import type { OutboundConfig, OutboundReady } from '@telepresence-ts/proto/network/v1';
import { TpError, toTpError } from '../errors.js';
import { dedupe, formatCidr, overlaps, parseCidr, subtract, tryParseCidr, type Cidr } from './cidr.js';

/** What the user asked for (ConnectRequest.outbound), with the defaults applied. */
export interface OutboundOptions {
  readonly disabled: boolean;
  readonly alsoProxy: readonly string[];
  readonly neverProxy: readonly string[];
}

export const OUTBOUND_DEFAULTS: OutboundOptions = { disabled: false, alsoProxy: [], neverProxy: [] };

/**
 * The codes of the failures that belong to outbound access alone (its network daemon, the routes,
 * DNS and the packet engine): a connection without outbound access has none of them. A command
 * that connects on its way (list, intercept) goes on without outbound access when one of them
 * stops it; an explicit `connect` reports it.
 */
export const OUTBOUND_FAILURE_CODES: ReadonlySet<string> = new Set([
  'subnet-conflict',
  'needs-root',
  'no-cluster-subnets',
  'outbound-busy',
  'outbound-device-failed',
  'outbound-engine-failed',
  'outbound-route-failed',
  'outbound-dns-failed',
  'network-daemon-unreachable',
  'network-daemon-start-failed',
  'network-command-failed',
  'engine-exited',
  'outbound-incomplete',
  'flow-socket-busy',
  'flow-socket-path',
]);

/** A route of the workstation's own (the main routing tables), as read from the kernel. */
export interface LocalRoute {
  readonly cidr: string;
  readonly device: string;
}

/** The flow server: the Unix socket where the engine hands over each flow. */
export interface FlowServerHandle {
  readonly socketPath: string;
  stats(): { tcpFlows: number; udpFlows: number; activeFlows: number };
  close(): Promise<void>;
}

/** The DNS resolver on 127.0.0.1. */
export interface DnsServerHandle {
  port(): number;
  /** The local port its own upstream questions leave from (exempt from the redirect). */
  upstreamPort(): number;
  stats(): { clusterQueries: number; upstreamQueries: number };
  close(): Promise<void>;
}

/** What the network daemon set up, for as long as it lasts. */
export interface NetworkLease {
  readonly ready: OutboundReady;
  /** Ends the Outbound call: the network daemon removes the device, routes and redirect. */
  release(): Promise<void>;
}

export interface OutboundPorts {
  getClusterInfo(): Promise<ClusterInfo>;
  localRoutes(): Promise<LocalRoute[]>;
  /** `cluster` says whether the manager has a dial port for the fast path (`dial_port`). */
  startFlowServer(cluster: ClusterInfo): Promise<FlowServerHandle>;
  /** `search` is the connected namespace's DNS search path; `routed` the CIDRs in the device. */
  startDnsServer(config: { namespace: string; clusterDomain: string; routed: readonly string[] }): Promise<DnsServerHandle>;
  /**
   * Asks the network daemon to bring the device, routes and redirect up; resolves once they are.
   * `onLost` is called when the lease ends by itself (the network daemon or its engine died).
   */
  acquireNetwork(config: OutboundConfig, progress: (line: string) => void, onLost: (err: TpError) => void): Promise<NetworkLease>;
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void;
}

/** Devices of our own, which never count as a conflict (a leftover of a daemon that died). */
const OWN_DEVICE = /^tpts\d+$/;

/** The search path of a pod in `namespace`, which our resolver follows for names outside the domain. */
export function dnsSearchPath(namespace: string, clusterDomain: string): string[] {
  return [`${namespace}.svc.${clusterDomain}`, `svc.${clusterDomain}`, clusterDomain];
}

/** Parses --also-proxy and --never-proxy; throws a `user` TpError before anything is set up. */
export function parseOutboundOptions(options: OutboundOptions): { also: Cidr[]; never: Cidr[] } {
  return {
    also: options.alsoProxy.map((c) => parseCidr(c, '--also-proxy')),
    never: options.neverProxy.map((c) => parseCidr(c, '--never-proxy')),
  };
}

export interface RoutePlan {
  readonly routed: readonly string[];
  readonly neverProxied: readonly string[];
}

/**
 * The subnets to route: the cluster's pod and service subnets and --also-proxy, minus
 * --never-proxy. A subnet that overlaps one of the workstation's own routes (a VPN, a Docker
 * network, a local cluster's bridge) is refused, naming both and the flag that resolves it: routing
 * it into the device would take those addresses away from that network.
 */
export function planRoutes(cluster: ClusterInfo, options: OutboundOptions, local: readonly LocalRoute[]): RoutePlan {
  const { also, never } = parseOutboundOptions(options);
  const sources: { cidr: Cidr; what: string }[] = [];
  for (const text of cluster.podSubnets) {
    const cidr = tryParseCidr(text);
    if (cidr !== undefined) sources.push({ cidr, what: "the cluster's pod subnet" });
  }
  for (const text of cluster.serviceSubnets) {
    const cidr = tryParseCidr(text);
    if (cidr !== undefined) sources.push({ cidr, what: "the cluster's service subnet" });
  }
  for (const cidr of also) sources.push({ cidr, what: '--also-proxy subnet' });
  if (sources.length === 0) {
    throw new TpError('cluster', 'no-cluster-subnets', 'the traffic-manager found no pod or service subnets in the cluster', {
      hint: 'name them with --also-proxy <cidr>, or connect with --outbound=false for intercepts only',
    });
  }
  const routed = dedupe(subtract(dedupe(sources.map((s) => s.cidr)), never));
  for (const r of routed) {
    for (const route of local) {
      if (OWN_DEVICE.test(route.device)) continue;
      const theirs = tryParseCidr(route.cidr);
      // The default route overlaps everything by design: it is where unrouted traffic goes, not a network.
      if (theirs === undefined || theirs.bits === 0 || !overlaps(r, theirs)) continue;
      const source = sources.find((s) => overlaps(s.cidr, r));
      const mine = formatCidr(r);
      const what = source !== undefined ? source.what : 'subnet';
      throw new TpError('user', 'subnet-conflict', `${what} ${mine} overlaps this workstation's route ${formatCidr(theirs)} (dev ${route.device})`, {
        hint: `pass --never-proxy ${formatCidr(theirs)} to leave those addresses to ${route.device}, or connect with --outbound=false for intercepts only`,
      });
    }
  }
  return { routed: routed.map(formatCidr), neverProxied: never.map(formatCidr) };
}

interface Running {
  readonly plan: RoutePlan;
  readonly domains: readonly string[];
  readonly flows: FlowServerHandle;
  readonly dns: DnsServerHandle;
  readonly lease: NetworkLease;
}

/** The outbound part of one connection: start once, stop once. */
export class OutboundAccess {
  readonly #ports: OutboundPorts;
  readonly #options: OutboundOptions;
  #running: Running | undefined;
  #error = '';
  #stopped = false;

  constructor(ports: OutboundPorts, options: OutboundOptions) {
    this.#ports = ports;
    this.#options = options;
  }

  /**
   * Brings outbound access up for a session in `namespace`; on failure everything started so far
   * is stopped again and the error is thrown.
   */
  async start(namespace: string, progress: (line: string) => void, onLost: (err: TpError) => void): Promise<void> {
    if (this.#options.disabled) return;
    const undo: (() => Promise<void>)[] = [];
    try {
      const [cluster, local] = await Promise.all([this.#ports.getClusterInfo(), this.#ports.localRoutes()]);
      const plan = planRoutes(cluster, this.#options, local);
      const domain = cluster.clusterDomain !== '' ? cluster.clusterDomain : 'cluster.local';
      const flows = await this.#ports.startFlowServer(cluster);
      undo.push(() => flows.close());
      const dns = await this.#ports.startDnsServer({ namespace, clusterDomain: domain, routed: plan.routed });
      undo.push(() => dns.close());
      const lease = await this.#ports.acquireNetwork(
        { subnets: [...plan.routed], flowSocket: flows.socketPath, dnsPort: dns.port(), dnsUpstreamPort: dns.upstreamPort(), mtu: 0 },
        progress,
        (err) => {
          if (this.#stopped) return;
          this.#error = err.message;
          this.#ports.log('warn', `outbound access lost: ${err.message}`);
          onLost(err);
        },
      );
      if (this.#stopped) {
        await lease.release();
        throw new TpError('user', 'connect-cancelled', 'the connection was closed while outbound access was being set up');
      }
      this.#running = { plan, domains: dnsSearchPath(namespace, domain), flows, dns, lease };
      this.#ports.log('info', `outbound access up: ${lease.ready.device} routes ${lease.ready.routes.join(', ')}; DNS for ${lease.ready.dnsRedirected.join(', ') || 'no nameserver'} via 127.0.0.1:${dns.port()}`);
    } catch (err: unknown) {
      for (const step of undo.reverse()) {
        await step().catch((e: unknown) => this.#ports.log('warn', `undoing outbound access: ${toTpError(e).message}`));
      }
      this.#error = toTpError(err).message;
      throw err;
    }
  }

  /** Takes everything down; safe to call more than once, and before start() has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const r = this.#running;
    this.#running = undefined;
    if (r === undefined) return;
    // The network daemon first: once the routes are gone no new flow can arrive.
    await r.lease.release().catch((e: unknown) => this.#ports.log('warn', `releasing the network: ${toTpError(e).message}`));
    await Promise.all([r.flows.close(), r.dns.close()]).catch((e: unknown) => this.#ports.log('warn', `closing outbound servers: ${toTpError(e).message}`));
  }

  status(): OutboundStatus {
    const r = this.#running;
    const flows = r?.flows.stats() ?? { tcpFlows: 0, udpFlows: 0, activeFlows: 0 };
    const dns = r?.dns.stats() ?? { clusterQueries: 0, upstreamQueries: 0 };
    return {
      state: this.#options.disabled ? 'off' : r !== undefined && this.#error === '' ? 'up' : this.#error !== '' ? 'failed' : 'off',
      device: r?.lease.ready.device ?? '',
      routed: [...(r?.lease.ready.routes ?? [])],
      neverProxied: [...(r?.plan.neverProxied ?? [])],
      dnsDomains: [...(r?.domains ?? [])],
      dnsRedirected: [...(r?.lease.ready.dnsRedirected ?? [])],
      tcpFlows: flows.tcpFlows,
      udpFlows: flows.udpFlows,
      activeFlows: flows.activeFlows,
      dnsClusterQueries: dns.clusterQueries,
      dnsUpstreamQueries: dns.upstreamQueries,
      error: this.#error,
    };
  }
}

/** The status of a connection without outbound access. */
export function outboundOff(): OutboundStatus {
  return new OutboundAccess(
    {
      getClusterInfo: () => Promise.reject(new Error('off')),
      localRoutes: () => Promise.resolve([]),
      startFlowServer: () => Promise.reject(new Error('off')),
      startDnsServer: () => Promise.reject(new Error('off')),
      acquireNetwork: () => Promise.reject(new Error('off')),
      log: () => undefined,
    },
    { ...OUTBOUND_DEFAULTS, disabled: true },
  ).status();
}
