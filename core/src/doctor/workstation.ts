/**
 * What this workstation needs: sshfs and FUSE for intercepts' volumes, and for outbound access
 * (docs/adr/0006-outbound-access.md) a TUN device, root or a running network daemon (with `ip` and
 * `iptables` for it), cluster subnets that clash with none of the workstation's own routes (the
 * plan connect itself makes, `planRoutes`), and a resolv.conf whose nameservers the DNS redirect
 * covers.
 */
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import { toTpError } from '../errors.js';
import { planRoutes, type LocalRoute, type OutboundOptions } from '../outbound/outbound.js';
import { parseResolvConf, RESOLV_CONF_PATH } from '../outbound/resolv-conf.js';
import { tryParseCidr } from '../outbound/cidr.js';
import { fail, ok, warn, type Finding } from './finding.js';

/** The workstation as the checks see it. */
export interface WorkstationHost {
  readonly platform: NodeJS.Platform;
  readonly euid: number;
  exists(path: string): Promise<boolean>;
  /** Where `command` is found on PATH, or undefined. */
  which(command: string): Promise<string | undefined>;
  /** Where `command` is found on PATH or in root's sbin folders (the network daemon's tools). */
  whichForRoot(command: string): Promise<string | undefined>;
  /** Whether a network daemon answers on its socket. */
  networkDaemonAnswers(): Promise<boolean>;
  /** The command that starts the network daemon for this user (connect's needs-root hint). */
  readonly networkDaemonCommand: string;
  localRoutes(): Promise<LocalRoute[]>;
  /** The text of /etc/resolv.conf; undefined when there is none. */
  readResolvConf(): Promise<string | undefined>;
}

export const FUSE_DEVICE = '/dev/fuse';
export const TUN_DEVICE = '/dev/net/tun';

/** systemd-resolved's stub listener. */
const RESOLVED_STUB = '127.0.0.53';

export async function checkVolumes(host: WorkstationHost): Promise<Finding> {
  const [sshfs, fuse] = await Promise.all([host.which('sshfs'), host.exists(FUSE_DEVICE)]);
  const missing = [...(sshfs === undefined ? ['sshfs is not on PATH'] : []), ...(fuse ? [] : [`${FUSE_DEVICE} is missing`])];
  if (missing.length === 0) return ok('volumes', 'workstation', `sshfs (${sshfs ?? ''}) and ${FUSE_DEVICE}: intercepts can mount the container's volumes`);
  const fix = [...(sshfs === undefined ? ['sudo apt-get install sshfs'] : []), ...(fuse ? [] : ['sudo modprobe fuse'])].join(' && ');
  return warn('volumes', 'workstation', `${missing.join(' and ')}: intercepts work, but without the container's volumes (or pass --mount=false)`, fix);
}

export async function checkTunDevice(host: WorkstationHost): Promise<Finding> {
  if (host.platform !== 'linux') {
    return fail('tun-device', 'workstation', `outbound access is Linux only (this is ${host.platform})`, 'kubectl telepresence connect --outbound=false');
  }
  if (await host.exists(TUN_DEVICE)) return ok('tun-device', 'workstation', `${TUN_DEVICE} is present`);
  return fail('tun-device', 'workstation', `${TUN_DEVICE} is missing: outbound access has no device to route into`, 'sudo modprobe tun (or connect with --outbound=false)');
}

export async function checkNetworkDaemon(host: WorkstationHost): Promise<Finding> {
  if (await host.networkDaemonAnswers()) return ok('network-daemon', 'workstation', 'a network daemon answers on its socket: connect hands it the device, routes and DNS redirect');
  if (host.euid !== 0) {
    return fail(
      'network-daemon',
      'workstation',
      'you are not root and no network daemon runs: connect cannot set up outbound access (commands that connect on their way go on without it)',
      `${host.networkDaemonCommand} (or connect with --outbound=false)`,
    );
  }
  const tools = await Promise.all(['ip', 'iptables'].map(async (t) => [t, await host.whichForRoot(t)] as const));
  const missing = tools.filter(([, path]) => path === undefined).map(([t]) => t);
  if (missing.length > 0) {
    return fail('network-daemon', 'workstation', `you are root, but ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing: the network daemon sets up routes and the DNS redirect with them`, 'sudo apt-get install iproute2 iptables');
  }
  return ok('network-daemon', 'workstation', 'you are root: connect starts the network daemon itself (ip and iptables found)');
}

/**
 * The cluster's subnets (and --also-proxy, minus --never-proxy) against the workstation's routes,
 * with connect's own rule: a conflict names both and the --never-proxy that resolves it.
 */
export async function checkSubnets(host: WorkstationHost, cluster: ClusterInfo | undefined, unknownWhy: string, options: OutboundOptions): Promise<Finding> {
  if (cluster === undefined) return warn('subnets', 'workstation', `not checked: the cluster's subnets come from the traffic-manager (${unknownWhy})`);
  const routes = await host.localRoutes();
  try {
    const plan = planRoutes(cluster, options, routes);
    const own = routes.filter((r) => (tryParseCidr(r.cidr)?.bits ?? 0) > 0).length;
    return ok('subnets', 'workstation', `${plan.routed.join(', ')} would be routed to the cluster, clashing with none of this workstation's ${own} routes`);
  } catch (err: unknown) {
    const e = toTpError(err);
    if (e.code !== 'subnet-conflict' && e.code !== 'no-cluster-subnets') throw err;
    return fail('subnets', 'workstation', e.message, e.hint ?? '');
  }
}

export async function checkDns(host: WorkstationHost): Promise<Finding> {
  const text = await host.readResolvConf();
  if (text === undefined) {
    return warn('dns', 'workstation', `${RESOLV_CONF_PATH} is missing: cluster names will not resolve (addresses still work)`);
  }
  const { nameservers } = parseResolvConf(text);
  const v4 = nameservers.filter((n) => tryParseCidr(n)?.family === 4);
  if (v4.length === 0) {
    return warn(
      'dns',
      'workstation',
      `${RESOLV_CONF_PATH} names no IPv4 nameserver${nameservers.length > 0 ? ` (only ${nameservers.join(', ')})` : ''}: the DNS redirect covers IPv4 nameservers only, so cluster names will not resolve (addresses still work)`,
      `add an IPv4 nameserver to ${RESOLV_CONF_PATH}`,
    );
  }
  if (v4.includes(RESOLVED_STUB)) {
    return warn(
      'dns',
      'workstation',
      `${RESOLV_CONF_PATH} names systemd-resolved's stub ${RESOLVED_STUB}: queries sent to it on port 53 are redirected, but programs that ask systemd-resolved directly (nss-resolve, D-Bus) bypass the redirect and will not resolve cluster names`,
    );
  }
  const v6 = nameservers.filter((n) => !v4.includes(n));
  return ok('dns', 'workstation', `queries to ${v4.join(', ')} would be answered first by the cluster${v6.length > 0 ? ` (${v6.join(', ')} not: IPv6)` : ''}`);
}

