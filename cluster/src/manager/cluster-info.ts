/**
 * What GetClusterInfo answers: the cluster's pod and Service subnets (which the workstation
 * routes into its TUN device), its DNS domain and the DNS server that LookupDNS asks. No
 * Kubernetes API says all of this in one place on every cluster, so each part has fallbacks
 * (below, each with its reason). The Kubernetes reads sit behind `ClusterNetworkApi`; the manager
 * pod's resolv.conf is read through a function, so tests pass text.
 */
import { dedupe, formatCidr, parseIp, tryParseCidr, type Cidr } from '@telepresence-ts/core/cidr';
import { ENV } from '@telepresence-ts/core/contracts';
import { isTpError, TpError } from '@telepresence-ts/core/errors';
import { parseResolvConf } from '@telepresence-ts/core/resolv-conf';
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';

/** The Kubernetes reads behind ClusterInfo. Failures are TpErrors, as with KubeApi. */
export interface ClusterNetworkApi {
  /** Every node's `spec.podCIDRs` (or the older `spec.podCIDR`), flattened; [] when no node has one. */
  listNodePodCidrs(): Promise<string[]>;
  /** The IPs of every pod of the cluster that has its own network namespace (not hostNetwork). */
  listPodIps(): Promise<string[]>;
  /**
   * `spec.cidrs` of every `networking.k8s.io/v1` ServiceCIDR; undefined when the API server does
   * not serve that resource (before Kubernetes 1.33).
   */
  listServiceCidrs(): Promise<string[] | undefined>;
  /**
   * Asks the API server to create (dryRun=All: nothing is stored) a Service of `namespace` whose
   * ClusterIP is `clusterIp`, and returns the API server's message when it refuses it (422), or
   * undefined when it accepts it.
   */
  refusedClusterIpMessage(namespace: string, clusterIp: string): Promise<string | undefined>;
  /** The ClusterIP of Service `default/kubernetes` (the API server's own), undefined without one. */
  kubernetesServiceIp(): Promise<string | undefined>;
}

/** The cluster's DNS domain when resolv.conf does not tell it (Kubernetes' own default). */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/**
 * How long an answer is reused. Nodes join (each with a new podCIDR) and ServiceCIDRs can be
 * added, so an answer is not kept forever; but every connecting client asks, and the fallbacks
 * list every pod of the cluster, so a burst of connects must not each pay for that.
 */
export const CLUSTER_INFO_TTL_MS = 30_000;

/**
 * A ClusterIP that no cluster uses for its Services (it is a public resolver's address): the API
 * server refuses it and, before ServiceCIDRs, says which range it would have accepted.
 */
const PROBE_CLUSTER_IP = '1.1.1.1';

/**
 * How wide a guessed subnet is around an address seen in it, when nothing says the real width.
 * Pods: a /16 holds the pod range of most IPv4 clusters (kubeadm and kind hand out /24s of a
 * /16); IPv6 pod ranges are /64 or wider per node. Services: the API server's IPv4 range is a /12
 * at most by default (10.96.0.0/12), of which small clusters use the first /16; an IPv6 range
 * may be at most a /108 before ServiceCIDRs, so a /108 cannot reach outside it by much.
 */
const GUESS_BITS = { pod: { 4: 16, 6: 64 }, service: { 4: 16, 6: 108 } } as const;

/** The subnet of `bits` (per family) around `ip`; undefined when `ip` is not an address. */
export function subnetAround(ip: string, bits: { readonly 4: number; readonly 6: number }): Cidr | undefined {
  const p = parseIp(ip);
  return p === undefined ? undefined : tryParseCidr(`${ip}/${bits[p.family]}`);
}

/**
 * The range in the API server's refusal of a ClusterIP outside it: "... The range of valid IPs
 * is 10.96.0.0/16". Reading a message is fragile, but before ServiceCIDRs (Kubernetes 1.33) no API
 * tells the Service range; Telepresence reads the same sentence.
 */
export function rangeFromRefusal(message: string): Cidr | undefined {
  const m = /range of valid IPs is ([0-9A-Fa-f:.]+\/\d{1,3})/.exec(message);
  return m === null ? undefined : tryParseCidr(m[1] as string);
}

/**
 * The cluster domain in a pod's search list, which the kubelet writes as
 * "<namespace>.svc.<domain> svc.<domain> <domain>": the entry after "svc.".
 */
export function clusterDomainFromSearch(search: readonly string[]): string {
  const svc = search.find((d) => d.startsWith('svc.') && d.length > 'svc.'.length);
  return svc === undefined ? DEFAULT_CLUSTER_DOMAIN : svc.slice('svc.'.length);
}

/** The DNS part of ClusterInfo, from the manager pod's resolv.conf (the cluster's DNS setup). */
export function dnsFromResolvConf(text: string): Pick<ClusterInfo, 'clusterDomain' | 'dnsServer'> {
  const conf = parseResolvConf(text);
  return { clusterDomain: clusterDomainFromSearch(conf.search), dnsServer: conf.nameservers[0] ?? '' };
}

function parseAll(list: readonly string[]): Cidr[] {
  return list.map((c) => tryParseCidr(c)).filter((c): c is Cidr => c !== undefined);
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export interface ClusterInfoDeps {
  readonly kube: ClusterNetworkApi;
  /** The manager's namespace, where the ClusterIP probe's (never stored) Service is "created". */
  readonly namespace: string;
  /** The manager pod's /etc/resolv.conf. */
  readonly readResolvConf: () => Promise<string>;
  readonly clock: Clock;
  readonly log: Logger;
  /** An admin's subnets (TP_POD_CIDRS, TP_SERVICE_CIDRS), used instead of discovery when set. */
  readonly podCidrs?: readonly string[];
  readonly serviceCidrs?: readonly string[];
}

/** The pod subnets: the nodes' podCIDRs, else subnets around the pods' IPs. */
export async function discoverPodSubnets(kube: ClusterNetworkApi, log: Logger): Promise<string[]> {
  let fromNodes: Cidr[] = [];
  try {
    fromNodes = parseAll(await kube.listNodePodCidrs());
  } catch (err: unknown) {
    log.warn("cannot read the nodes' pod CIDRs; guessing from the pods' IPs", { error: describe(err) });
  }
  if (fromNodes.length > 0) return dedupe(fromNodes).map(formatCidr);
  // CNIs with their own IPAM (Calico, Cilium in cluster-pool mode, cloud VPC CNIs) leave the
  // nodes' podCIDR unset or unused: the pods' own addresses are then the only evidence, and a
  // subnet around each covers its neighbours, including pods that start later.
  const around = (await kube.listPodIps()).map((ip) => subnetAround(ip, GUESS_BITS.pod)).filter((c): c is Cidr => c !== undefined);
  return dedupe(around).map(formatCidr);
}

/** The Service subnets: the ServiceCIDRs, else the API server's refusal, else around `kubernetes`. */
export async function discoverServiceSubnets(kube: ClusterNetworkApi, namespace: string, log: Logger): Promise<string[]> {
  try {
    const cidrs = parseAll((await kube.listServiceCidrs()) ?? []);
    if (cidrs.length > 0) return dedupe(cidrs).map(formatCidr);
  } catch (err: unknown) {
    // Also an installation whose RBAC predates the ServiceCIDR rule: the fallbacks still work.
    log.warn('cannot list the ServiceCIDRs; asking the API server for its range', { error: describe(err) });
  }
  // Before Kubernetes 1.33 no API object holds the Service range (the API server's
  // --service-cluster-ip-range flag); but it names the range when it refuses a ClusterIP outside.
  try {
    const message = await kube.refusedClusterIpMessage(namespace, PROBE_CLUSTER_IP);
    const range = message === undefined ? undefined : rangeFromRefusal(message);
    if (range !== undefined) return [formatCidr(range)];
    log.warn('the API server did not name its Service range; guessing it from the kubernetes Service', { message });
  } catch (err: unknown) {
    log.warn('cannot ask the API server for its Service range; guessing it from the kubernetes Service', { error: describe(err) });
  }
  // The API server's own Service takes the first address of the (first) range, so the subnet
  // around it holds at least the Services allocated first.
  const ip = await kube.kubernetesServiceIp();
  const around = ip === undefined ? undefined : subnetAround(ip, GUESS_BITS.service);
  if (around === undefined) {
    throw new TpError('cluster', 'no-service-subnet', "cannot tell the cluster's Service subnet: no ServiceCIDR, no range in the API server's answer, no kubernetes Service", {
      hint: `set ${ENV.serviceCidrs} on the traffic-manager to the cluster's Service CIDRs`,
    });
  }
  return [formatCidr(around)];
}

/**
 * ClusterInfo, computed on first use and then reused for CLUSTER_INFO_TTL_MS. Concurrent callers
 * share one computation; a failed one is not kept, so the next call tries again.
 */
export class ClusterInfoProvider {
  readonly #deps: ClusterInfoDeps;
  #cached: { info: ClusterInfo; at: number } | undefined;
  #pending: Promise<ClusterInfo> | undefined;
  #dns: Promise<Pick<ClusterInfo, 'clusterDomain' | 'dnsServer'>> | undefined;

  constructor(deps: ClusterInfoDeps) {
    this.#deps = deps;
  }

  /** The current ClusterInfo (fresh or at most CLUSTER_INFO_TTL_MS old). */
  get(): Promise<ClusterInfo> {
    const now = this.#deps.clock.now();
    if (this.#cached !== undefined && now - this.#cached.at < CLUSTER_INFO_TTL_MS) return Promise.resolve(this.#cached.info);
    this.#pending ??= this.#compute().then(
      (info) => {
        this.#cached = { info, at: this.#deps.clock.now() };
        this.#pending = undefined;
        return info;
      },
      (err: unknown) => {
        this.#pending = undefined;
        throw err;
      },
    );
    return this.#pending;
  }

  /**
   * The DNS part alone, read once: a pod's resolv.conf does not change while it runs, and
   * LookupDNS (one call per name the workstation asks) must not wait for the Kubernetes reads.
   */
  dns(): Promise<Pick<ClusterInfo, 'clusterDomain' | 'dnsServer'>> {
    this.#dns ??= this.#deps.readResolvConf().then(dnsFromResolvConf, (err: unknown) => {
      this.#deps.log.warn('cannot read resolv.conf; assuming the default cluster domain and no DNS server', { error: describe(err) });
      return { clusterDomain: DEFAULT_CLUSTER_DOMAIN, dnsServer: '' };
    });
    return this.#dns;
  }

  async #compute(): Promise<ClusterInfo> {
    const { kube, namespace, log } = this.#deps;
    const given = (list: readonly string[] | undefined): string[] | undefined => (list !== undefined && list.length > 0 ? [...list] : undefined);
    try {
      const [podSubnets, serviceSubnets, dns] = await Promise.all([
        given(this.#deps.podCidrs) ?? discoverPodSubnets(kube, log),
        given(this.#deps.serviceCidrs) ?? discoverServiceSubnets(kube, namespace, log),
        this.dns(),
      ]);
      log.debug('cluster info', { podSubnets, serviceSubnets, ...dns });
      return { podSubnets, serviceSubnets, ...dns };
    } catch (err: unknown) {
      if (isTpError(err)) throw err;
      throw new TpError('cluster', 'cluster-info', `cannot tell the cluster's subnets: ${describe(err)}`, { cause: err });
    }
  }
}
