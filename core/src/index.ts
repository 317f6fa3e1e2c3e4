/** The public surface of @telepresence-ts/core. */
export * from './backoff.js';
export * from './clock.js';
export * from './contracts.js';
export * from './daemon-client.js';
export * from './errors.js';
export * from './version.js';
export * from './wire-errors.js';
export * from './kube/index.js';
export * from './kube/watch.js';
export * from './install/install.js';
export type { InjectorTls } from './install/certs.js';
export type { InstallOptions } from './install/manifests.js';
export { Daemon, checkManagerVersion, majorMinor, type ConnectArgs, type DaemonDeps } from './daemon/daemon.js';
export { runDaemon, type RunDaemonOptions } from './daemon/run.js';
export { detachedDaemonLauncher, type DaemonLauncher } from './daemon/launcher.js';
export { daemonLogPath, daemonSocketPath, cacheDir } from './daemon/paths.js';
export { LOCAL_HOST, localPortRefuses } from './daemon/local-dial.js';
export type { ManagerConnection, ManagerConnector } from './daemon/manager-connection.js';
export type { Logger } from './daemon/logger.js';
// The wire types front ends handle, so that they need not depend on the proto package themselves.
export { ConnectionState, type ConnectionStatus, type ListResponse, type LostIntercept, type OutboundRequest, type OutboundStatus, type StateSnapshot, type WorkloadInfo, type VersionResponse } from '@telepresence-ts/proto/daemon/v1';
export { OUTBOUND_FAILURE_CODES } from './outbound/outbound.js';
export { InterceptDisposition, type InterceptInfo, type InterceptSpec, type InterceptTarget } from '@telepresence-ts/proto/manager/v1';
export type { ProcessExit, ProcessRunner, RunningProcess, StartOptions } from './process/process-runner.js';
export { nodeProcessRunner } from './process/node-process-runner.js';
export { executableIn, findExecutable, pathDirs } from './process/which.js';
export { formatDotenv, formatEnvJson, parseDotenv } from './daemon/remote-env.js';
export type { InterceptRemote } from '@telepresence-ts/proto/daemon/v1';
