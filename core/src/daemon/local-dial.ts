/**
 * Dialing the user's process on this host. An intercept names a port only; the process may listen
 * on IPv4's loopback, on IPv6's, or on both. Servers asked to listen on "localhost" often take
 * `::1` alone (Node 17 and later, many dev servers), and a dial of 127.0.0.1 alone would find
 * nothing there. So every intercepted connection tries 127.0.0.1 and then ::1, as one socket:
 * Node's family autoselection moves to the next address as soon as one refuses, which on the
 * loopback costs a few microseconds.
 */
import net, { type LookupFunction } from 'node:net';

/** How the local destination is shown: either loopback may answer. */
export const LOCAL_HOST = 'localhost';

/** Both loopbacks, IPv4 first: what `connectLocal` tries, in order. */
const LOOPBACKS = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
] as const;

/** Answers any name with the two loopbacks, without asking the resolver. */
const loopbackLookup: LookupFunction = (_hostname, options, callback) => {
  if (options.all === true) callback(null, LOOPBACKS.map((a) => ({ ...a })));
  else callback(null, LOOPBACKS[0].address, LOOPBACKS[0].family);
};

/** Socket options a caller may add; where to connect is ours to decide. */
export type LocalDialOptions = Omit<net.TcpNetConnectOpts, 'host' | 'port' | 'lookup' | 'family' | 'autoSelectFamily'>;

/** Connects to `port` on this host's loopback, IPv4 or IPv6, whichever answers first in that order. */
export function connectLocal(port: number, options: LocalDialOptions = {}): net.Socket {
  return net.connect({ ...options, host: LOCAL_HOST, port, lookup: loopbackLookup, autoSelectFamily: true });
}

/**
 * What went wrong when dialing the local port, for logs and for the peer. When every address
 * refused, Node reports an AggregateError without a message; say what that means.
 */
export function describeLocalDialError(err: Error, port: number): string {
  if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
    return `nothing listens on port ${port} of this host (tried 127.0.0.1 and ::1)`;
  }
  return err.message !== '' ? err.message : String((err as NodeJS.ErrnoException).code ?? err.name);
}

/**
 * Whether the loopback refuses connections to `port` on both addresses now: nothing listens there.
 * Any other outcome (an answer, a timeout, another error) is not a refusal. The probe connection
 * is closed as soon as it opens.
 */
export function localPortRefuses(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectLocal(port);
    const done = (refused: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(refused);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(false));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}
