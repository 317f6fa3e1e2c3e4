/**
 * The traffic-agent's end when its pod terminates. Kubernetes sends SIGTERM to every container at
 * once (after each one's preStop hook), while kube-proxy is still taking the pod out of its
 * Services: an app that keeps serving for that moment (a preStop pause, a graceful drain) loses
 * no request, and the agent in front of it must not lose them for it. So the agent keeps
 * forwarding for as long as the app still accepts connections on a port it fronts, and stops once
 * none does (or after `DRAIN_MAX_MS`; the kubelet kills what is left when the grace period ends).
 */
import { connect } from 'node:net';
import type { Clock } from '../shared/clock.js';

/** How often the app's ports are tried while draining. */
export const DRAIN_POLL_MS = 200;
/** The longest the agent outlives SIGTERM: the pod's default grace period. */
export const DRAIN_MAX_MS = 30_000;

/** Whether something accepts a TCP connection on the pod's loopback at `port`. */
export function acceptsOnLoopback(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(DRAIN_POLL_MS, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface DrainOptions {
  readonly clock: Clock;
  readonly accepts?: (port: number) => Promise<boolean>;
  readonly pollMs?: number;
  readonly maxMs?: number;
}

/**
 * Resolves `stopped` once no port of `ports` accepts a connection (at once when there is none),
 * or `timeout` after `maxMs`.
 */
export async function untilAppStops(ports: readonly number[], o: DrainOptions): Promise<'stopped' | 'timeout'> {
  const accepts = o.accepts ?? acceptsOnLoopback;
  const deadline = o.clock.now() + (o.maxMs ?? DRAIN_MAX_MS);
  for (;;) {
    const open = await Promise.all(ports.map((p) => accepts(p)));
    if (!open.includes(true)) return 'stopped';
    if (o.clock.now() >= deadline) return 'timeout';
    await new Promise<void>((resolve) => o.clock.setTimer(o.pollMs ?? DRAIN_POLL_MS, resolve));
  }
}
