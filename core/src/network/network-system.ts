/**
 * The `NetworkSystem` port: the privileged operations of outbound access (a TUN device, routes
 * into it, the DNS redirect), named by what they do rather than by the tools that do them. The
 * network daemon's centre calls only this; linux-network-system.ts implements it with `ip` and
 * `iptables`, and tests pass fakes.
 */

/** Our devices are `tpts0`, `tpts1`, ...: the prefix tells our leftovers from anyone else's links. */
export const DEVICE_PREFIX = 'tpts';

/** True for a link name this product creates. */
export function isOurDevice(name: string): boolean {
  return new RegExp(`^${DEVICE_PREFIX}\\d+$`).test(name);
}

/** The first `tptsN` not among the existing links. */
export function firstFreeDevice(existing: readonly string[]): string {
  const taken = new Set(existing);
  for (let n = 0; ; n++) {
    const name = `${DEVICE_PREFIX}${n}`;
    if (!taken.has(name)) return name;
  }
}

/** The iptables chain (nat table) that holds the DNS redirect; OUTPUT jumps to it. */
export const DNS_CHAIN = 'TPTS-DNS';

export interface DnsRedirect {
  /** IPv4 nameservers whose UDP/53 traffic goes to `dnsPort` on this host. */
  readonly nameservers: readonly string[];
  /** The resolver's port on 127.0.0.1. */
  readonly dnsPort: number;
  /** The resolver's own upstream questions leave from this UDP port and are not redirected. */
  readonly upstreamPort: number;
}

export interface NetworkSystem {
  /** The names of every network link (device) that exists now. */
  listDevices(): Promise<string[]>;
  /** Creates a persistent TUN device that `ownerUid` may attach to without privilege. */
  createTun(name: string, ownerUid: number): Promise<void>;
  /** Sets the MTU and brings the device up. */
  setUp(name: string, mtu: number): Promise<void>;
  /** Deletes the device, and with it every route through it. */
  deleteDevice(name: string): Promise<void>;
  /** Routes `cidr` (IPv4 or IPv6, host bits clear) into the device. */
  addRoute(device: string, cidr: string, family: 4 | 6): Promise<void>;
  /** Installs the chain, its rules and the jump from OUTPUT (in that order: the jump comes last). */
  addDnsRedirect(redirect: DnsRedirect): Promise<void>;
  /** Removes the jump and the chain; a no-op when they are absent. True when something was removed. */
  removeDnsRedirect(): Promise<boolean>;
}
