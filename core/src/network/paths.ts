/** Where the network daemon listens and logs. */
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PRODUCT_DIR } from '../daemon/paths.js';

/** Overrides the socket path: tests, and a daemon per network namespace, need their own. */
export const NETWORK_SOCKET_ENV = 'TELEPRESENCE_NETWORK_SOCKET';

/**
 * Root's runtime folder, not the user's: the daemon runs as root, and a socket under a folder the
 * user owns could be swapped for another by that user. The folder is 0755 (anyone may look up the
 * socket); the socket itself is 0600 and owned by the one user the daemon serves.
 */
export const NETWORK_SOCKET_DIR = `/run/${PRODUCT_DIR}`;

/** `$TELEPRESENCE_NETWORK_SOCKET`, else `/run/telepresence-ts/network.sock`. */
export function networkSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[NETWORK_SOCKET_ENV];
  return override !== undefined && override !== '' ? override : join(NETWORK_SOCKET_DIR, 'network.sock');
}

/**
 * `~root/.cache/telepresence-ts/network-daemon.log`: the cache folder of the user the daemon runs
 * as (root), taken from the password database rather than $HOME or $XDG_CACHE_HOME, which sudo
 * may pass on from the invoking user; a root-owned file in their cache would then break it.
 */
export function networkDaemonLogPath(home: string = userInfo().homedir): string {
  return join(home, '.cache', PRODUCT_DIR, 'network-daemon.log');
}
