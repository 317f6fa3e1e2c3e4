/**
 * The real `RoutingProbe` (prepare.ts): a TCP connection from the traffic-manager's pod to a
 * Service's virtual IP, which counts as reaching an agent when the first bytes back are
 * `ROUTING_PROBE_REPLY`. Agents answer a connection from the manager's pod that starts with
 * `ROUTING_PROBE_REQUEST` with it at once (forwarder.ts); an app, or a pod on its way out, does not.
 */
import { ROUTING_PROBE_REPLY, ROUTING_PROBE_REQUEST } from '@telepresence-ts/core/contracts';
import { connect } from 'node:net';

export interface ProbeTimeouts {
  /**
   * For the connection: one to a pod that has exited hangs until kube-proxy drops that pod, while
   * one to a live pod takes a round trip of the pod network, well under a millisecond on a node.
   */
  readonly connectMs: number;
  /**
   * For the reply, once connected. An agent sends it within a millisecond or two; an app never
   * does, so every probe that reaches one waits this long, and how soon prepare notices that the
   * Service has switched to the new pods depends on it. A slow agent just costs another probe.
   */
  readonly replyMs: number;
}

export const PROBE_TIMEOUTS: ProbeTimeouts = { connectMs: 100, replyMs: 30 };

export function probeRouting(address: string, port: number, timeouts: ProbeTimeouts = PROBE_TIMEOUTS): Promise<boolean> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host: address, port });
    const finish = (reached: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reached);
    };
    let timer = setTimeout(() => finish(false), timeouts.connectMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      // The agent answers only a connection that starts with this (forwarder.ts).
      socket.write(ROUTING_PROBE_REQUEST);
      timer = setTimeout(() => finish(false), timeouts.replyMs);
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      // Done as soon as the bytes either complete the reply or stop matching it.
      if (received.length >= ROUTING_PROBE_REPLY.length || !ROUTING_PROBE_REPLY.startsWith(received)) finish(received.startsWith(ROUTING_PROBE_REPLY));
    });
    socket.on('end', () => finish(false));
    socket.on('error', () => finish(false));
  });
}
