/**
 * The real `RoutingProbe` (prepare.ts): a TCP connection from the traffic-manager's pod to a
 * Service's virtual IP, which counts as reaching an agent when the first bytes back are
 * `ROUTING_PROBE_REPLY`. Agents answer a connection from the manager's pod with it at once
 * (forwarder.ts); an app, or a pod on its way out, does not.
 */
import { ROUTING_PROBE_REPLY } from '@telepresence-ts/core/contracts';
import { connect } from 'node:net';

/**
 * How long one probe waits for the reply. An agent answers within a millisecond or two of the
 * connection; a connection to an exited pod hangs until kube-proxy drops it, and an app never
 * sends the reply, so every failed probe would otherwise wait out the whole timeout.
 */
export const ROUTING_PROBE_TIMEOUT_MS = 200;

export function probeRouting(address: string, port: number, timeoutMs: number = ROUTING_PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host: address, port });
    const finish = (reached: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reached);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
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
