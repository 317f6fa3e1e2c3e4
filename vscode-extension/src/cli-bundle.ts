/**
 * Where the extension's daemon finds the CLI that outbound access needs. The network daemon (the
 * root half of outbound access) is the CLI's `network-daemon` verb, with the packet engine beside
 * the CLI's shim, and the .vsix ships neither: a native engine would make the .vsix
 * platform-specific. So the daemon looks for the CLI as kubectl finds the plugin, as
 * `kubectl-telepresence` on PATH, and follows the shim to its bundle; the setting
 * `telepresence.cliPath` names one instead. Only a CLI of the extension's own version is used: the
 * network daemon speaks the daemon's network.proto, which changes between releases. Without one,
 * its connections have intercepts only, and `describeCliLookup` says why and what to install.
 */
import { basename, dirname, isAbsolute, join } from 'node:path';

/** The file system as this lookup needs it; cli-lookup-fs.ts is node:fs, tests pass a fake. */
export interface CliLookupFs {
  /** The path with every symlink resolved; undefined when nothing is there. */
  realpath(path: string): string | undefined;
  isFile(path: string): boolean;
  /** The file's text; undefined when it cannot be read. */
  readText(path: string): string | undefined;
}

/** The name kubectl's plugin discovery looks for. */
export const CLI_SHIM = 'kubectl-telepresence';
/** The CLI's bundled script, one folder above the shim in every layout. */
export const CLI_BUNDLE = `${CLI_SHIM}.js`;
/**
 * The environment variable that carries `telepresence.cliPath` from the extension to the daemon
 * it starts (child-processes.ts sets it, daemon-main.ts reads it).
 */
export const CLI_PATH_ENV = 'TP_CLI_PATH';
/** The names a user installs the CLI by: pack-npm.sh's package, release-settings.sh's krew plugin. */
export const NPM_PACKAGE = 'telepresence-ts';
export const KREW_PLUGIN = 'telepresence';

/** A CLI met on the way. */
export interface CliCandidate {
  /** As met: the shim in a PATH folder, or the setting's path. */
  readonly path: string;
  /** The bundle it runs, which is what the network daemon runs as. */
  readonly bundle: string;
  /** From the package.json beside the bundle; undefined when none names one. */
  readonly version: string | undefined;
}

/** Why `telepresence.cliPath` names no CLI at all. */
export type SettingProblem = 'relative' | 'missing' | 'not-a-cli';

/** What the lookup found, with what it needs to say why it found nothing. */
export interface CliLookup {
  /** The version the CLI must have: the extension's. */
  readonly want: string;
  /** `telepresence.cliPath` when set: then it alone counts, and PATH is not searched. */
  readonly setting: string | undefined;
  /** The CLI of version `want`; undefined when there is none. */
  readonly found: CliCandidate | undefined;
  /** CLIs of another (or no known) version, skipped, in the order met. */
  readonly skipped: readonly CliCandidate[];
  /** Set when `setting` names no CLI. */
  readonly settingProblem?: SettingProblem;
}

export interface CliLookupOptions {
  /** The daemon's PATH: the extension host's, which VS Code read from a login shell. */
  readonly pathEnv: string;
  /** `telepresence.cliPath`; empty or undefined: search PATH. */
  readonly setting?: string | undefined;
  /** The extension's version (core's VERSION). */
  readonly version: string;
}

/**
 * The CLI that outbound access runs, of the extension's version: the one `telepresence.cliPath`
 * names when set, else the first matching `kubectl-telepresence` along PATH (absolute entries
 * only, as a daemon's working folder is `/`).
 *
 * Every released layout puts the bundle one folder above the shim, with a package.json naming
 * the version beside it, and reaches the shim through symlinks that this follows:
 * - a build: `dist/bin/kubectl-telepresence`, `dist/kubectl-telepresence.js` (esbuild.config.mjs);
 * - npm: `<prefix>/bin/kubectl-telepresence` links to
 *   `<prefix>/lib/node_modules/telepresence-ts/bin/kubectl-telepresence`;
 * - krew: `~/.krew/bin/kubectl-telepresence` links to
 *   `~/.krew/store/telepresence/v<version>/bin/kubectl-telepresence`.
 * The setting may also name the bundle itself.
 */
export function findCli(options: CliLookupOptions, fs: CliLookupFs): CliLookup {
  const want = options.version;
  const setting = options.setting?.trim() ?? '';
  if (setting !== '') {
    if (!isAbsolute(setting)) return { want, setting, found: undefined, skipped: [], settingProblem: 'relative' };
    const met = inspect(setting, fs);
    if (typeof met === 'string') return { want, setting, found: undefined, skipped: [], settingProblem: met };
    return met.version === want ? { want, setting, found: met, skipped: [] } : { want, setting, found: undefined, skipped: [met] };
  }
  const skipped: CliCandidate[] = [];
  const seen = new Set<string>();
  for (const dir of options.pathEnv.split(':')) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const met = inspect(join(dir, CLI_SHIM), fs);
    // The same CLI twice on PATH (a folder listed twice, or two links to it) counts once.
    if (typeof met === 'string' || seen.has(met.bundle)) continue;
    seen.add(met.bundle);
    if (met.version === want) return { want, setting: undefined, found: met, skipped };
    skipped.push(met);
  }
  return { want, setting: undefined, found: undefined, skipped };
}

/** The CLI at `path` (its shim, a link to the shim, or its bundle), or why there is none. */
function inspect(path: string, fs: CliLookupFs): CliCandidate | 'missing' | 'not-a-cli' {
  const real = fs.realpath(path);
  if (real === undefined || !fs.isFile(real)) return 'missing';
  const bundle = basename(real) === CLI_BUNDLE ? real : join(dirname(real), '..', CLI_BUNDLE);
  if (!fs.isFile(bundle)) return 'not-a-cli';
  return { path, bundle, version: readVersion(join(dirname(bundle), 'package.json'), fs) };
}

function readVersion(packageJson: string, fs: CliLookupFs): string | undefined {
  const text = fs.readText(packageJson);
  if (text === undefined) return undefined;
  try {
    const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' && version !== '' ? version : undefined;
  } catch {
    return undefined;
  }
}

/** Why no CLI was found, and what to do; undefined when one was. */
export interface CliProblem {
  readonly reason: string;
  readonly fix: string;
}

export function cliProblem(l: CliLookup): CliProblem | undefined {
  return l.found === undefined ? problemOf(l) : undefined;
}

function problemOf(l: CliLookup): CliProblem {
  const npm = `npm install -g ${NPM_PACKAGE}@${l.want}`;
  if (l.setting !== undefined) {
    const fix = `install the CLI v${l.want} (${npm}, or kubectl krew upgrade ${KREW_PLUGIN}) and point telepresence.cliPath at its ${CLI_SHIM}, or clear telepresence.cliPath to use the one on PATH`;
    switch (l.settingProblem) {
      case 'relative':
        return { reason: `telepresence.cliPath is ${l.setting}, which is not an absolute path`, fix };
      case 'missing':
        return { reason: `telepresence.cliPath names ${l.setting}, where there is no file`, fix };
      case 'not-a-cli':
        return { reason: `telepresence.cliPath names ${l.setting}, which is not a ${CLI_SHIM} CLI (there is no ../${CLI_BUNDLE} beside it)`, fix };
      case undefined: {
        const [met] = l.skipped;
        return { reason: `telepresence.cliPath names ${l.setting}, the CLI ${versionOf(met)}, and this extension is v${l.want}`, fix };
      }
    }
  }
  const alternative = 'or name one in telepresence.cliPath';
  if (l.skipped.length === 0) {
    return { reason: `there is no ${CLI_SHIM} on PATH`, fix: `install the CLI v${l.want}: ${npm} or kubectl krew install ${KREW_PLUGIN} (${alternative})` };
  }
  const listed = l.skipped.map((c) => `${versionOf(c)} (${c.path})`).join(', ');
  const which = l.skipped.length === 1 ? `the ${CLI_SHIM} on PATH is` : `the ${CLI_SHIM} CLIs on PATH are`;
  return {
    reason: `${which} ${listed}, and this extension is v${l.want}`,
    fix: `install the CLI v${l.want}: ${npm} or kubectl krew upgrade ${KREW_PLUGIN} (${alternative})`,
  };
}

function versionOf(c: CliCandidate | undefined): string {
  return c?.version !== undefined ? `v${c.version}` : 'of unknown version';
}

/**
 * One line on the lookup, for the daemon's log and the extension's output: the CLI that outbound
 * access runs and what was skipped for it, or why there is none and the fix.
 */
export function describeCliLookup(l: CliLookup): string {
  if (l.found !== undefined) {
    const skipped = l.skipped.length > 0 ? `; skipped ${l.skipped.map((c) => `${c.path} (${versionOf(c)})`).join(', ')}` : '';
    return `outbound access runs the CLI v${l.want} at ${l.found.path} (${l.found.bundle})${skipped}`;
  }
  const { reason, fix } = problemOf(l);
  return `no outbound access (intercepts only): ${reason}. Fix: ${fix}`;
}
