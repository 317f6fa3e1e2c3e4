import { serializeAgentConfig, type AgentConfig } from '@telepresence-ts/core/agent-config';
import { createHash } from 'node:crypto';

/** Length of the hash in hex characters: 64 bits, plenty to tell one workload's configs apart. */
const HASH_HEX_CHARS = 16;

/**
 * The hash that ties a pod to the agent configuration it was injected with. The injector writes it
 * as the pod annotation `telepresence.io/agent-config-hash`; the traffic-manager's ConfigMap
 * watcher compares it with the entry's hash to decide whether the workload must roll out.
 *
 * It hashes the serialized entry (stable key order), so two equal configurations always hash
 * alike, whoever built them.
 */
export function agentConfigHash(config: AgentConfig): string {
  return createHash('sha256').update(serializeAgentConfig(config)).digest('hex').slice(0, HASH_HEX_CHARS);
}

/** The pod annotation carrying `agentConfigHash` of the configuration the pod was injected with. */
export const AGENT_CONFIG_HASH_ANNOTATION = 'telepresence.io/agent-config-hash';
