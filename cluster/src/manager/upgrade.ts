/**
 * Brings the agents of an earlier install along to this one. When the traffic-manager starts, an
 * entry of a `telepresence-agents` ConfigMap that names another agent image (or another manager
 * address, or agent log level or resources) than this manager's was written by an earlier version: it is built again
 * from its workload and written, and the ConfigMap watcher then replaces that workload's pods,
 * by eviction as for any change, so each gets the new agent without anyone intercepting again.
 */
import { parseAgentConfig, replacedContainers, serializeAgentConfig, withReplaced, type AgentConfig } from '@telepresence-ts/core/agent-config';
import type { Logger } from '../shared/log.js';
import { buildAgentConfig, type BuildOptions } from './agent-config-builder.js';
import type { KubeApi } from './kube.js';

/**
 * Whether an entry was written by a manager with other build options than `build`. The log level
 * compared is the agents' (`TP_AGENT_LOG_LEVEL`), not the manager's own; resources compare as
 * JSON, both canonical (written by a builder from a parsed environment), absent as absent.
 */
export function isStale(config: AgentConfig, build: BuildOptions): boolean {
  return (
    config.agentImage !== build.agentImage ||
    config.managerHost !== build.managerHost ||
    config.managerPort !== build.managerPort ||
    config.logLevel !== build.logLevel ||
    JSON.stringify(config.resources) !== JSON.stringify(build.resources)
  );
}

export interface RefreshResult {
  /** `namespace/name` of each entry written again. */
  readonly refreshed: string[];
  /** `namespace/name` and why, of each stale entry that could not be built again (left as it was). */
  readonly failed: Array<{ entry: string; error: string }>;
}

/** Writes every stale entry again, built with `build` from its workload as it is now. */
export async function refreshAgentConfigs(deps: { kube: KubeApi; build: BuildOptions; log: Logger }): Promise<RefreshResult> {
  const { kube, build, log } = deps;
  const result: RefreshResult = { refreshed: [], failed: [] };
  for (const { namespace, name, value } of await kube.listAgentConfigs()) {
    const entry = `${namespace}/${name}`;
    try {
      const old = parseAgentConfig(name, value);
      if (!isStale(old, build)) continue;
      const [workload] = await kube.findWorkloads(namespace, old.workloadName, old.workloadKind);
      if (workload === undefined) {
        result.failed.push({ entry, error: `its ${old.workloadKind} ${old.workloadName} no longer exists` });
        continue;
      }
      // Replaced containers stay so: their replaces are made again on this manager (replace.ts).
      const fresh = serializeAgentConfig(withReplaced(buildAgentConfig(workload, await kube.listServices(namespace), build), replacedContainers(old)));
      if (await kube.applyAgentConfig(namespace, name, fresh)) {
        result.refreshed.push(entry);
        log.info('brought an agent configuration to this version', { entry, from: old.agentImage, to: build.agentImage });
      }
    } catch (err: unknown) {
      const error = err instanceof Error ? err.message : String(err);
      result.failed.push({ entry, error });
    }
  }
  for (const f of result.failed) log.warn('left an agent configuration of an earlier version as it is', f);
  return result;
}
