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

export interface ManagerConnection {
  readonly target: KubeTarget;
  readonly kube: KubeApi;
  readonly manager: ManagerClient;
  /** Closes the channel and the port-forward. */
  close(): Promise<void>;
}

export type ManagerConnector = (flags: KubeFlags, managerNamespace: string) => Promise<ManagerConnection>;

/** The production connector: a client-node port-forward to a Ready traffic-manager pod. */
export function portForwardConnector(kubeFactory: KubeApiFactory, log: Logger): ManagerConnector {
  return async (flags, managerNamespace) => {
    const kube = await kubeFactory(flags);
    const pod = await findManagerPod(kube, managerNamespace);
    const forward = await kube.portForward(managerNamespace, pod.name, pod.port, (err) => log('warn', err.message));
    log('info', `forwarding 127.0.0.1:${forward.localPort} to ${managerNamespace}/${pod.name}:${pod.port}`);
    const manager = new TunnelManagerClient(`127.0.0.1:${forward.localPort}`, credentials.createInsecure(), { ...TUNNEL_CHANNEL_OPTIONS });
    return {
      target: kube.target,
      kube,
      manager,
      close: async () => {
        manager.close();
        await forward.close();
      },
    };
  };
}
