/**
 * Composition root of the traffic-manager: the environment, the Kubernetes adapter, the State,
 * the gRPC service (with /healthz on the same port), and the agent-configuration watcher.
 * Argv (after `node manager.js`):
 * - nothing (or `serve`): the traffic-manager.
 * - `remove-agents`: removes every agent configuration, waits (bounded) for the pods with an
 *   agent to go, and exits; the Helm chart's pre-delete hook (remove-agents.ts).
 */
import { Server } from '@grpc/grpc-js';
import { RESOLV_CONF_PATH } from '@telepresence-ts/core/resolv-conf';
import { readFile } from 'node:fs/promises';
import { holdingClock, systemClock } from '../shared/clock.js';
import { listenGrpcAndHealth } from '../shared/grpc-http-mux.js';
import { widenServerStreamWindow } from '../shared/grpc-window.js';
import { createLogger } from '../shared/log.js';
import { runProgram } from '../shared/program.js';
import { ENV, LOG_LEVELS, MANAGER_DIAL_PORT, type LogLevel } from '@telepresence-ts/core/contracts';
import { exitCodeFor, formatTpError, toTpError } from '@telepresence-ts/core/errors';
import { ClusterInfoProvider } from './cluster-info.js';
import { DialPort } from './dial-port.js';
import { parseManagerEnv } from './env.js';
import { ClientNodeInjectorHealth } from './injector-health.js';
import { ClientNodeKubeApi } from './kube.js';
import { parseManagerMode, removeAgents, type ManagerMode } from './remove-agents.js';
import { AgentConfigWatcher } from './rollout.js';
import { ReplaceSync } from './replace.js';
import { probeRouting } from './routing-probe.js';
import { addToServer } from './service.js';
import { State } from './state.js';
import type { BuildOptions } from './agent-config-builder.js';
import { refreshAgentConfigs } from './upgrade.js';

/** How long a SIGTERM waits for open calls (tunnels) before cutting them. */
const SHUTDOWN_GRACE_MS = 5000;

const NAME = 'traffic-manager';

let mode: ManagerMode;
try {
  mode = parseManagerMode(process.argv.slice(2));
} catch (thrown: unknown) {
  const err = toTpError(thrown);
  process.stderr.write(`${formatTpError(err, NAME)}\n`);
  process.exit(exitCodeFor(err.category));
}

if (mode === 'remove-agents') {
  const wanted = process.env[ENV.logLevel]?.trim().toLowerCase();
  const level: LogLevel = LOG_LEVELS.find((l) => l === wanted) ?? 'info';
  const log = createLogger(`${NAME}-remove-agents`, level, (line) => process.stdout.write(line));
  // Inside the promise: a kubeconfig that cannot be loaded is logged as any other failure.
  (async () => removeAgents({ kube: ClientNodeKubeApi.fromEnvironment(), clock: holdingClock, log }))().then(
    () => process.exit(0),
    (thrown: unknown) => {
      const err = toTpError(thrown);
      log.error('could not remove the agents', { code: err.code, error: err.message, hint: err.hint });
      process.exit(exitCodeFor(err.category));
    },
  );
} else {
  void runProgram({
    name: NAME,
    parseEnv: () => parseManagerEnv(process.env),
    start: async (config, log) => {
      const kube = ClientNodeKubeApi.fromEnvironment((path, err) =>
        log.warn('watch failed; re-opening', { path, error: err instanceof Error ? err.message : String(err) }),
      );
      const state = new State(systemClock);
      // The outbound fast path is an optimisation: a manager that cannot listen there still serves
      // every flow through Outbound calls.
      const dialPort = await DialPort.start({ log, requireClient: (id) => state.requireClient(id), port: MANAGER_DIAL_PORT }).catch((err: unknown) => {
        log.warn('no dial port; outbound flows take Outbound calls only', { error: err instanceof Error ? err.message : String(err) });
        return undefined;
      });
      const watcher = new AgentConfigWatcher({ kube, clock: systemClock, log });
      const build: BuildOptions = {
        agentImage: config.agentImage,
        managerHost: config.managerHost,
        managerPort: config.port,
        logLevel: config.agentLogLevel,
        ...(config.agentResources === undefined ? {} : { resources: config.agentResources }),
      };
      const replaceSync = new ReplaceSync({ kube, state, log });
      const server = new Server();
      if (!widenServerStreamWindow(server)) log.warn('cannot widen the HTTP/2 stream window: this grpc-js differs; tunnels will be slower');
      const service = addToServer(server, {
        state,
        kube,
        clock: systemClock,
        build,
        prepareTimeoutMs: config.prepareTimeoutMs,
        log,
        podIps: config.podIps,
        ...(dialPort !== undefined ? { dialPort: dialPort.port } : {}),
        probeRouting,
        injector: ClientNodeInjectorHealth.fromEnvironment(config.namespace),
        rollouts: watcher,
        replaceSync,
        clusterInfo: new ClusterInfoProvider({
          kube,
          namespace: config.namespace,
          readResolvConf: () => readFile(RESOLV_CONF_PATH, 'utf8'),
          clock: systemClock,
          log,
          podCidrs: config.podCidrs,
          serviceCidrs: config.serviceCidrs,
        }),
      });
      let stopping = false;
      const listener = await listenGrpcAndHealth(server, config.port, '0.0.0.0', () => !stopping);
      log.info('serving gRPC and /healthz', { port: listener.port, dialPort: dialPort?.port });
      watcher.start();
      // Replaces held on an earlier manager are made again by their clients; the rest end then.
      const stopGrace = replaceSync.syncAllAfterGrace(systemClock);
      // After the watcher has started: it replaces the pods of every entry written again.
      void refreshAgentConfigs({ kube, build, log }).catch((err: unknown) =>
        log.error('could not bring the agents of an earlier version along', { error: err instanceof Error ? err.message : String(err) }),
      );
      return async () => {
        stopping = true;
        stopGrace();
        watcher.stop();
        // Ends every watch stream and fails pending tunnels, so the graceful shutdown can finish.
        state.close();
        service.endClientStreams();
        // Fast-path flows are cut as Outbound calls are: the client sees each broken.
        await dialPort?.close();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        server.forceShutdown();
        await listener.close();
      };
    },
  });
}
