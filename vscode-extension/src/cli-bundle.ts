/**
 * Where the extension's daemon finds the CLI that outbound access needs. The network daemon (the
 * root half of outbound access) is the CLI's `network-daemon` verb, with the packet engine beside
 * the CLI's shim, and the .vsix ships neither: a native engine would make the .vsix
 * platform-specific. So the daemon looks for the CLI as kubectl finds the plugin, as
 * `kubectl-telepresence` on PATH, and follows the shim to its bundle. Without one, its
 * connections have intercepts only.
 */
import { dirname, isAbsolute, join } from 'node:path';

/** The file system as this lookup needs it; the daemon passes node:fs, tests a fake. */
export interface CliLookupFs {
  /** The path with every symlink resolved; undefined when nothing is there. */
  realpath(path: string): string | undefined;
  isFile(path: string): boolean;
}

/** The name kubectl's plugin discovery looks for. */
export const CLI_SHIM = 'kubectl-telepresence';

/**
 * The CLI bundle of the first `kubectl-telepresence` on `pathEnv` (absolute entries only, as a
 * daemon's working folder is `/`). The build lays the shim out as `dist/bin/kubectl-telepresence`
 * running `dist/kubectl-telepresence.js` (esbuild.config.mjs); a shim linked from elsewhere
 * (~/bin) is followed back there.
 */
export function findCliBundle(pathEnv: string, fs: CliLookupFs): string | undefined {
  for (const dir of pathEnv.split(':')) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const shim = fs.realpath(join(dir, CLI_SHIM));
    if (shim === undefined || !fs.isFile(shim)) continue;
    const bundle = join(dirname(shim), '..', `${CLI_SHIM}.js`);
    if (fs.isFile(bundle)) return bundle;
  }
  return undefined;
}
