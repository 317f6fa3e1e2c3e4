/** Composition root of the traffic-manager: for now, version + config + /healthz on its gRPC port. */
import { startHealthServer } from '../shared/healthz.js';
import { runProgram } from '../shared/program.js';
import { parseManagerEnv } from './env.js';

void runProgram({
  name: 'traffic-manager',
  parseEnv: () => parseManagerEnv(process.env),
  start: async (config, log) => {
    const health = await startHealthServer(config.port);
    log.info('serving /healthz', { port: health.port });
    return () => health.close();
  },
});
