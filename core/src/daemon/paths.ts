/** Where the daemon's socket and log live. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const PRODUCT_DIR = 'telepresence-ts';

/** `~/.cache/telepresence-ts` (or $XDG_CACHE_HOME/telepresence-ts): logs, and the socket without XDG_RUNTIME_DIR. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(home, '.cache'), PRODUCT_DIR);
}

/** `$XDG_RUNTIME_DIR/telepresence-ts/daemon.sock`, else `~/.cache/telepresence-ts/daemon.sock`. */
export function daemonSocketPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const runtime = env.XDG_RUNTIME_DIR;
  return join(runtime !== undefined && runtime !== '' ? join(runtime, PRODUCT_DIR) : cacheDir(env, home), 'daemon.sock');
}

export function daemonLogPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return join(cacheDir(env, home), 'daemon.log');
}
