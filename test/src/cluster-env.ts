/**
 * Where the e2e suites find the test cluster. `test/cluster/up.sh` writes
 * `$TP_STATE/cluster.env` (default `/var/lib/tp-cluster`) with KUBECONFIG, TP_CLUSTER,
 * TP_HOST_ADDRESS and TP_NODE_NAME; a variable set in the environment wins over the file.
 * A kind cluster (`TP_CLUSTER=kind npm run cluster:up`) keeps its cluster.env elsewhere
 * (`/var/lib/tp-kind` by default, so that both clusters can exist at once): run the suites with
 * `TP_STATE=/var/lib/tp-kind` to use it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/tp-cluster';

export interface ClusterEnv {
  readonly kubeconfig: string;
  /** `local` or `kind`, when known. */
  readonly cluster: string | undefined;
  /** An address of this machine that the cluster's API server can reach (webhooks). */
  readonly hostAddress: string | undefined;
  readonly nodeName: string | undefined;
  /** Where the values came from, for messages: "environment" or the cluster.env path. */
  readonly source: string;
}

/** The user got here without a cluster; the message says what to type. */
export class ClusterNotUpError extends Error {
  constructor(detail: string) {
    super(`${detail}\nNo test cluster is configured: run \`npm run cluster:up\` (or set KUBECONFIG) and retry.`);
    this.name = 'ClusterNotUpError';
  }
}

/** Parses `KEY=value` lines; blank lines and `#` comments are skipped, one layer of quotes removed. */
export function parseEnvFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) continue;
    let value = m[2];
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    values.set(m[1], value);
  }
  return values;
}

/** The file-system port: the file's text, or undefined when it does not exist. */
export type ReadTextFile = (path: string) => string | undefined;
export type FileExists = (path: string) => boolean;

/** Pure resolution from the environment and whatever files `readFile` can see. */
export function resolveClusterEnv(
  env: Readonly<Record<string, string | undefined>>,
  readFile: ReadTextFile,
  fileExists: FileExists,
): ClusterEnv {
  const stateDir = nonEmpty(env['TP_STATE']) ?? DEFAULT_STATE_DIR;
  const envFile = join(stateDir, 'cluster.env');
  const text = readFile(envFile);
  const fromFile = text === undefined ? new Map<string, string>() : parseEnvFile(text);
  const pick = (key: string): string | undefined => nonEmpty(env[key]) ?? nonEmpty(fromFile.get(key));

  const envKubeconfig = nonEmpty(env['KUBECONFIG']);
  const kubeconfig = envKubeconfig ?? nonEmpty(fromFile.get('KUBECONFIG'));
  if (kubeconfig === undefined) {
    throw new ClusterNotUpError(
      text === undefined
        ? `KUBECONFIG is not set and ${envFile} does not exist.`
        : `KUBECONFIG is not set and ${envFile} has no KUBECONFIG line.`,
    );
  }
  // KUBECONFIG may be a colon-separated list; kubectl merges it. Only a single missing file is
  // worth a friendlier message than kubectl's own.
  if (!kubeconfig.includes(':') && !fileExists(kubeconfig)) {
    const from = envKubeconfig === undefined ? envFile : 'the environment';
    throw new ClusterNotUpError(`KUBECONFIG=${kubeconfig} (from ${from}) does not exist.`);
  }
  return {
    kubeconfig,
    cluster: pick('TP_CLUSTER'),
    hostAddress: pick('TP_HOST_ADDRESS'),
    nodeName: pick('TP_NODE_NAME'),
    source: envKubeconfig === undefined ? envFile : 'environment',
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The real thing: this process's environment and file system. */
export function loadClusterEnv(env: NodeJS.ProcessEnv = process.env): ClusterEnv {
  return resolveClusterEnv(env, readIfExists, existsSync);
}
