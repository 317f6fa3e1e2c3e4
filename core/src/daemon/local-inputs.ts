/**
 * Checks of what an intercept takes from the workstation (a name, a port, files to write), made
 * before the cluster is touched: a bad input found after the rollout would leave the workload
 * restarted for nothing.
 */
import { accessSync, constants as fsConstants, statSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { InterceptSpec } from '@telepresence-ts/proto/manager/v1';
import type { InterceptOptions } from '../daemon-client.js';
import { engagementMode, takesTraffic } from '../engagement.js';
import { TpError } from '../errors.js';

/** Kubernetes' rule for names that must be safe everywhere (a DNS label). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The workload, local port and name of a requested intercept: `bad-usage` without a workload,
 * `bad-port` for a port outside 1-65535, `bad-intercept-name` for a name that is not a DNS label
 * (a name becomes part of paths, the mount's temporary folder, and of the intercept's id).
 */
export function checkInterceptRequest(
  requested: Pick<InterceptSpec, 'workloadName' | 'localPort' | 'name'> & { readonly mode?: string; readonly ports?: InterceptSpec['ports'] },
): void {
  // Also an unknown mode, before anything else.
  const mode = engagementMode(requested);
  if (requested.workloadName === '') {
    const usage =
      mode === 'ingest' || mode === 'replace' ? `kubectl telepresence ${mode} <workload>` : 'kubectl telepresence intercept <workload> --port <local port>';
    throw new TpError('user', 'bad-usage', 'no workload given', { hint: usage });
  }
  if (mode === 'replace') checkReplacePorts(requested.ports ?? []);
  // An ingest takes no traffic, so it has no local port; a replace has one per port (`ports`).
  if (mode !== 'replace' && takesTraffic(requested) && (!Number.isInteger(requested.localPort) || requested.localPort < 1 || requested.localPort > 65535)) {
    throw new TpError('user', 'bad-port', `local port ${requested.localPort} is not a port number (1-65535)`, { hint: 'pass --port <local port>[:<service port>]' });
  }
  if (requested.name !== '' && !DNS_LABEL.test(requested.name)) {
    throw new TpError('user', 'bad-intercept-name', `intercept name ${JSON.stringify(requested.name)} is not a DNS label`, {
      hint: 'pass --name with lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters',
    });
  }
}

const REPLACE_PORT_HINT = 'pass --port <local port>:<container port> once per container port to move, e.g. --port 18080:8080; a port not named keeps its number';

/**
 * A replace's port map: `bad-port` unless every port is 1-65535, no container port is mapped
 * twice and no two container ports go to one local port (its connections could not be told apart).
 */
export function checkReplacePorts(ports: InterceptSpec['ports']): void {
  const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  const byLocal = new Map<number, number>();
  const seen = new Set<number>();
  for (const p of ports) {
    if (!isPort(p.containerPort) || !isPort(p.localPort)) {
      throw new TpError('user', 'bad-port', `${p.localPort}:${p.containerPort} is not a pair of port numbers (1-65535)`, { hint: REPLACE_PORT_HINT });
    }
    if (seen.has(p.containerPort)) {
      throw new TpError('user', 'bad-port', `container port ${p.containerPort} is mapped twice`, { hint: REPLACE_PORT_HINT });
    }
    seen.add(p.containerPort);
    const other = byLocal.get(p.localPort);
    if (other !== undefined) {
      throw new TpError('user', 'bad-port', `container ports ${other} and ${p.containerPort} both go to local port ${p.localPort}`, { hint: REPLACE_PORT_HINT });
    }
    byLocal.set(p.localPort, p.containerPort);
  }
}

/** `env-file-unwritable` unless every file the intercept is asked to write (--env-file, --env-json) can be. */
export function checkOutputFiles(options: Pick<InterceptOptions, 'envFile' | 'envJson'>): void {
  for (const [flag, path] of [['--env-file', options.envFile], ['--env-json', options.envJson]] as const) {
    if (path !== undefined && path !== '') checkWritableFile(path, flag);
  }
}

/**
 * `env-file-unwritable` unless `path` is absolute and a file there can be written: its folder
 * exists and is writable, and the path is not a folder or a read-only file.
 */
export function checkWritableFile(path: string, flag: string): void {
  const refuse = (why: string, hint: string): never => {
    throw new TpError('user', 'env-file-unwritable', `cannot write ${flag} ${path}: ${why}`, { hint });
  };
  if (!isAbsolute(path)) refuse('the path is not absolute', `front ends resolve ${flag} against their working directory`);
  const dir = dirname(path);
  const folder = statOrUndefined(dir);
  if (folder === undefined) refuse(`the folder ${dir} does not exist`, `create it first (mkdir -p ${dir}), or pass another ${flag}`);
  if (folder?.isDirectory() !== true) refuse(`${dir} is not a folder`, `pass another ${flag}`);
  if (!canAccess(dir, fsConstants.W_OK)) refuse(`the folder ${dir} is not writable`, `pass a path in a folder you can write to, e.g. ${flag} ./${basename(path)}`);
  const file = statOrUndefined(path);
  if (file?.isDirectory() === true) refuse('it is a folder', `pass a file name, e.g. ${flag} ${join(path, 'intercept.env')}`);
  if (file !== undefined && !canAccess(path, fsConstants.W_OK)) refuse('the file is read-only', `make it writable (chmod u+w ${path}), or pass another ${flag}`);
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}
