import { ENV } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import type { Env } from '../shared/env-reader.js';
import { runIptablesInit, type CommandRunner } from '../shared/iptables-init.js';
import type { Logger } from '../shared/log.js';

/**
 * The image's argv contract: `node agent.js agent` serves (the sidecar; also the default with no
 * argument), `node agent.js init` installs the iptables redirects and exits (the init container).
 */
export type AgentMode = 'agent' | 'init';

/** The mode named by the first program argument; a `config` TpError for anything else. */
export function parseAgentMode(args: readonly string[]): AgentMode {
  const mode = args[0] ?? 'agent';
  if (mode === 'agent' || mode === 'init') return mode;
  throw new TpError('config', 'bad-arguments', `unknown mode "${mode}"`, {
    hint: 'run the traffic-agent image with the argument `agent` (the sidecar) or `init` (the init container)',
  });
}

/**
 * The `init` mode: redirect the pod's numeric target ports to the agent (see iptables-init.ts,
 * which owns the rules and their environment). Throws when a rule cannot be added, so the init
 * container fails and the pod does not start with traffic bypassing the agent.
 */
export async function runInit(runner: CommandRunner, env: Env, log: Logger): Promise<void> {
  const added = await runIptablesInit(runner, env);
  log.info('iptables redirects in place', { ports: env[ENV.agentInitPorts] ?? '', added: added.map((rule) => rule.join(' ')) });
}
