/** Composition root of the agent-injector: for now, version + config + /healthz on its webhook port. */
import { startHealthServer } from '../shared/healthz.js';
import { runProgram } from '../shared/program.js';
import { parseInjectorEnv } from './env.js';

void runProgram({
  name: 'agent-injector',
  parseEnv: () => parseInjectorEnv(process.env),
  start: async (config, log) => {
    const health = await startHealthServer(config.port);
    log.info('serving /healthz', { port: health.port });
    return () => health.close();
  },
});
