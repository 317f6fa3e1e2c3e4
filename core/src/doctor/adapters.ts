/**
 * The real ports of `doctor`: the cluster adapter (loaded on first use, since it pulls in
 * @kubernetes/client-node) and this workstation (its files, PATH, routes and network daemon).
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import type { KubeFlags } from '../kube/kube-api.js';
import { pingNetworkDaemon, startNetworkDaemonCommand } from '../network/client.js';
import { networkSocketPath } from '../network/paths.js';
import { readLocalRoutes } from '../outbound/local-routes.js';
import { executableIn, pathDirs } from '../process/which.js';
import { RESOLV_CONF_PATH } from '../outbound/resolv-conf.js';
import type { DoctorPorts } from './doctor.js';
import type { WorkstationHost } from './workstation.js';

/** Root's usual command folders, where `ip` and `iptables` live (often off a user's PATH). */
const ROOT_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** This workstation, for a process with this environment and CLI path. */
export function processWorkstationHost(env: NodeJS.ProcessEnv, cliPath: string): WorkstationHost {
  const dirs = pathDirs(env);
  const socketPath = networkSocketPath(env);
  return {
    platform: process.platform,
    euid: process.geteuid?.() ?? -1,
    exists: (path) =>
      access(path, constants.F_OK).then(
        () => true,
        () => false,
      ),
    which: async (command) => executableIn(dirs, command),
    whichForRoot: async (command) => executableIn([...dirs, ...ROOT_DIRS], command),
    networkDaemonAnswers: () => pingNetworkDaemon(socketPath),
    networkDaemonCommand: startNetworkDaemonCommand(cliPath, process.getuid?.() ?? 0, socketPath, networkSocketPath({})),
    localRoutes: readLocalRoutes,
    readResolvConf: () => readFile(RESOLV_CONF_PATH, 'utf8').catch(() => undefined),
  };
}

/**
 * The ports for one run. A kubeconfig that cannot be read leaves `cluster` undefined with the
 * reason, so that the workstation's checks still run.
 */
export async function createDoctorPorts(flags: KubeFlags, env: NodeJS.ProcessEnv, cliPath: string): Promise<DoctorPorts> {
  const host = processWorkstationHost(env, cliPath);
  const now = (): Date => new Date();
  const adapter = await import('./cluster-adapter.js');
  try {
    return { cluster: adapter.createDoctorCluster(flags), host, now };
  } catch (err: unknown) {
    return { cluster: undefined, clusterError: err, host, now };
  }
}
