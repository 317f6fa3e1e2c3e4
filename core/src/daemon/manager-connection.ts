/**
 * How the daemon reaches a traffic-manager: resolve the kube flags, find the manager pod, forward
 * a local port to it, and open a gRPC channel over that port. Behind the `ManagerConnector` port
 * so that tests can hand the daemon a fake manager on 127.0.0.1.
 */
import { credentials } from '@grpc/grpc-js';
import type { ManagerClient } from '@telepresence-ts/proto/manager/v1';
import { TunnelManagerClient } from '@telepresence-ts/proto/manager/v1/tunnel';
import { TUNNEL_CHANNEL_OPTIONS } from '../contracts.js';
import type { KubeApi, KubeApiFactory, KubeFlags, KubeTarget } from '../kube/kube-api.js';
import { findManagerPod } from '../kube/manager-pod.js';
import type { Logger } from './logger.js';
import type { Duplex } from 'node:stream';

export interface ManagerConnection {
  readonly target: KubeTarget;
  readonly kube: KubeApi;
  readonly manager: ManagerClient;
  /** The traffic-manager pod the channel is forwarded to; absent for a manager reached otherwise (tests). */
  readonly managerPod?: { readonly namespace: string; readonly name: string };
  /** Closes the channel and the port-forward. */
  close(): Promise<void>;
}

/**
 * A manager client whose channel is a port-forward to one traffic-manager pod, and which can open
 * further streams to that pod's ports (each a port-forward of its own): what the outbound fast path
 * parks at the manager's dial port. Outbound access is handed the session's client only, so the
 * client carries the pod.
 */
export class PodManagerClient extends TunnelManagerClient {
  readonly #openPodStream: (port: number) => Promise<Duplex>;
  readonly pod: { readonly namespace: string; readonly name: string };

  constructor(address: string, pod: { readonly namespace: string; readonly name: string }, openPodStream: (port: number) => Promise<Duplex>) {
    super(address, credentials.createInsecure(), { ...TUNNEL_CHANNEL_OPTIONS });
    this.pod = pod;
    this.#openPodStream = openPodStream;
  }

  /** Opens a stream to `port` of the manager's pod (its loopback included). */
  openPodStream(port: number): Promise<Duplex> {
    return this.#openPodStream(port);
  }
}

export type ManagerConnector = (flags: KubeFlags, managerNamespace: string) => Promise<ManagerConnection>;

/** The production connector: a client-node port-forward to a Ready traffic-manager pod. */
export function portForwardConnector(kubeFactory: KubeApiFactory, log: Logger): ManagerConnector {
  return async (flags, managerNamespace) => {
    const kube = await kubeFactory(flags);
    const pod = await findManagerPod(kube, managerNamespace);
    const forward = await kube.portForward(managerNamespace, pod.name, pod.port, (err) => log('warn', err.message));
    log('info', `forwarding 127.0.0.1:${forward.localPort} to ${managerNamespace}/${pod.name}:${pod.port}`);
    const managerPod = { namespace: managerNamespace, name: pod.name };
    const manager = new PodManagerClient(`127.0.0.1:${forward.localPort}`, managerPod, (port) => kube.openPodStream(managerNamespace, pod.name, port));
    return {
      target: kube.target,
      kube,
      manager,
      managerPod,
      close: async () => {
        manager.close();
        await forward.close();
      },
    };
  };
}
