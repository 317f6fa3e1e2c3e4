/** Composition root of the traffic-agent: for now, version + config + /healthz on its API port. */
import { startHealthServer } from '../shared/healthz.js';
import { runProgram } from '../shared/program.js';
import { parseAgentEnv } from './env.js';

void runProgram({
  name: 'traffic-agent',
  parseEnv: () => parseAgentEnv(process.env),
  start: async (config, log) => {
    const health = await startHealthServer(config.port);
    log.info('serving /healthz', { port: health.port });
    return () => health.close();
  },
});
