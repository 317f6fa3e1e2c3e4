/**
 * `doctor`: every check, run concurrently where they do not depend on each other, its findings
 * in a fixed order. The ports are passed in (adapters.ts builds the real ones), so the whole run
 * is unit-tested with fakes.
 */
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import { RESOURCE_NAMES } from '../contracts.js';
import { toTpError } from '../errors.js';
import { parseOutboundOptions, type OutboundOptions } from '../outbound/outbound.js';
import { fail, guarded, type Finding } from './finding.js';
import { checkProgram } from './installation.js';
import { checkPodSecurity } from './pod-security.js';
import { checkPortForward, type ManagerProbe } from './port-forward.js';
import { checkRbac } from './rbac.js';
import { checkWebhook, type WebhookKube } from './webhook.js';
import { checkDns, checkNetworkDaemon, checkSubnets, checkTunDevice, checkVolumes, type WorkstationHost } from './workstation.js';

/** Everything the checks ask of the cluster. */
export type DoctorCluster = WebhookKube & ManagerProbe;

export interface DoctorPorts {
  /** undefined when no cluster could be chosen (a bad kubeconfig): `clusterError` says why. */
  readonly cluster: DoctorCluster | undefined;
  readonly clusterError?: unknown;
  readonly host: WorkstationHost;
  readonly now: () => Date;
}

export interface DoctorOptions {
  readonly managerNamespace: string;
  /** The namespace the user works in; the kube context's when undefined. */
  readonly namespace?: string | undefined;
  readonly clientVersion: string;
  /** As connect's --outbound, --also-proxy, --never-proxy: disabled skips the outbound checks. */
  readonly outbound: OutboundOptions;
}

/** What the run looked at, for the text output's headings. */
export interface DoctorScope {
  readonly context: string;
  readonly server: string;
  readonly namespace: string;
  readonly managerNamespace: string;
}

export interface DoctorReport {
  readonly scope: DoctorScope | undefined;
  readonly findings: Finding[];
}

/** Runs every check. Throws only for a bad command line (--also-proxy or --never-proxy that is no CIDR). */
export async function runDoctor(ports: DoctorPorts, options: DoctorOptions): Promise<DoctorReport> {
  parseOutboundOptions(options.outbound);
  const { host } = ports;
  const outbound = !options.outbound.disabled;
  const workstation = (clusterInfo: Promise<{ info?: ClusterInfo | undefined; why: string }>): Promise<Finding[]>[] => [
    guarded('volumes', 'workstation', () => checkVolumes(host)),
    ...(outbound
      ? [
          guarded('tun-device', 'workstation', () => checkTunDevice(host)),
          guarded('network-daemon', 'workstation', () => checkNetworkDaemon(host)),
          guarded('subnets', 'workstation', async () => {
            const { info, why } = await clusterInfo;
            return checkSubnets(host, info, why, options.outbound);
          }),
          guarded('dns', 'workstation', () => checkDns(host)),
        ]
      : []),
  ];

  const kube = ports.cluster;
  // The first question doubles as the test that the cluster answers at all.
  const reach =
    kube === undefined
      ? toTpError(ports.clusterError)
      : await kube.canI({ verb: 'get', resource: 'pods', namespace: options.managerNamespace }).then(
          () => undefined,
          (err: unknown) => toTpError(err),
        );
  if (kube === undefined || reach !== undefined) {
    const e = reach ?? toTpError(ports.clusterError);
    const found = [fail('cluster', 'cluster', `cannot check the cluster: ${e.message}`, e.hint ?? ''), ...(await Promise.all(workstation(Promise.resolve({ why: 'the cluster cannot be reached' })))).flat()];
    return { scope: undefined, findings: found };
  }

  const namespace = options.namespace !== undefined && options.namespace !== '' ? options.namespace : kube.target.namespace;
  const mns = options.managerNamespace;
  const forward = checkPortForward(kube, mns, options.clientVersion).catch((err: unknown) => {
    const e = toTpError(err);
    return { finding: fail('port-forward', 'permissions', e.message, e.hint ?? ''), clusterInfo: undefined, clusterInfoError: e.message };
  });
  const clusterInfo = forward.then((r) => ({ info: r.clusterInfo, why: r.clusterInfoError ?? 'the traffic-manager did not say' }));
  const all = await Promise.all([
    guarded(RESOURCE_NAMES.manager, 'cluster', () => checkProgram(kube, mns, RESOURCE_NAMES.manager, options.clientVersion)),
    guarded(RESOURCE_NAMES.injector, 'cluster', () => checkProgram(kube, mns, RESOURCE_NAMES.injector, options.clientVersion)),
    guarded('webhook', 'cluster', () => checkWebhook(kube, { managerNamespace: mns, namespace, now: ports.now() })),
    guarded('pod-security', 'cluster', () => checkPodSecurity(kube, namespace)),
    guarded('rbac', 'permissions', () => checkRbac(kube, mns, namespace)),
    forward.then((r) => [r.finding]),
    ...workstation(clusterInfo),
  ]);
  return {
    scope: { context: kube.target.context, server: kube.target.server, namespace, managerNamespace: mns },
    findings: all.flat(),
  };
}
