/**
 * Composition root of the traffic-agent image. Argv (after `node agent.js`):
 * - `agent` (or nothing): the sidecar; reads its configuration file ($TP_AGENT_CONFIG) and serves.
 * - `init`: the init container; adds the iptables redirects ($TP_AGENT_INIT_PORTS) and exits 0.
 */
import { ENV, LOG_LEVELS, type LogLevel } from '@telepresence-ts/core/contracts';
import { exitCodeFor, formatTpError, toTpError } from '@telepresence-ts/core/errors';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { allIntercepts } from '@telepresence-ts/core/agent-config';
import { systemClock } from '../shared/clock.js';
import { commandRunner } from '../shared/command-runner.js';
import { createLogger } from '../shared/log.js';
import { runProgram } from '../shared/program.js';
import { startAgent } from './agent.js';
import { untilAppStops } from './drain.js';
import { loadAgentSettings } from './env.js';
import { parseAgentMode, runInit, type AgentMode } from './init.js';

const NAME = 'traffic-agent';

function fail(thrown: unknown): never {
  const err = toTpError(thrown);
  process.stderr.write(`${formatTpError(err, NAME)}\n`);
  process.exit(exitCodeFor(err.category));
}

let mode: AgentMode;
try {
  mode = parseAgentMode(process.argv.slice(2));
} catch (thrown: unknown) {
  fail(thrown);
}

if (mode === 'init') {
  const wanted = process.env[ENV.logLevel]?.trim().toLowerCase();
  const level: LogLevel = LOG_LEVELS.find((l) => l === wanted) ?? 'info';
  const log = createLogger(`${NAME}-init`, level, (line) => process.stdout.write(line));
  runInit(commandRunner, process.env, log).then(() => process.exit(0), fail);
} else {
  void runProgram({
    name: NAME,
    parseEnv: () => loadAgentSettings(process.env, (path) => readFileSync(path, 'utf8'), hostname),
    start: async (settings, log) => {
      const agent = await startAgent(settings, log);
      return async () => {
        const ports = [...new Set(allIntercepts(settings.config).map(({ intercept }) => intercept.containerPort))];
        log.info('forwarding until the app stops accepting connections', { ports });
        const how = await untilAppStops(ports, { clock: systemClock });
        log.info(how === 'stopped' ? 'the app stopped; stopping' : 'the app still accepts connections; stopping anyway', { ports });
        await agent.stop();
      };
    },
  });
}
