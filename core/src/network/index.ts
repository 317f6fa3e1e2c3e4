/**
 * The network daemon: the root half of outbound access (TUN device, packet engine, routes, DNS
 * redirect), its socket, and the user daemon's client of it. Linux only.
 */
export { NETWORK_SOCKET_DIR, NETWORK_SOCKET_ENV, networkDaemonLogPath, networkSocketPath } from './paths.js';
export { DEVICE_PREFIX, DNS_CHAIN, firstFreeDevice, isOurDevice, type DnsRedirect, type NetworkSystem } from './network-system.js';
export { linuxNetworkSystem, type LinuxNetworkSystemOptions } from './linux-network-system.js';
export { engineArgs, type EngineProcess, type EngineSpawner, type EngineSpec } from './engine.js';
export { nodeEngineSpawner } from './node-engine.js';
export {
  DEFAULT_MTU,
  ENGINE_READY_TIMEOUT_MS,
  NetworkDaemon,
  validateOutboundConfig,
  type NetworkDaemonDeps,
  type OutboundListener,
  type Owner,
  type PathKind,
  type ValidOutboundConfig,
} from './network-daemon.js';
export { addNetworkToServer } from './server.js';
export { runNetworkDaemon, type RunNetworkDaemonOptions } from './run.js';
export { detachedNetworkDaemonLauncher, type NetworkDaemonLauncher } from './launcher.js';
export {
  GrpcNetworkClient,
  NETWORK_DAEMON_START_TIMEOUT_MS,
  connectNetworkDaemon,
  pingNetworkDaemon,
  startNetworkDaemonCommand,
  type ConnectNetworkDaemonOptions,
  type NetworkApi,
  type OutboundSession,
} from './client.js';
export { primaryGroupOf } from './owner.js';
