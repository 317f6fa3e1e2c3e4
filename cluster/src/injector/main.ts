/**
 * Composition root of the agent-injector: the Kubernetes adapter (ConfigMap cache), the decision
 * (with pre-injection) and the HTTPS webhook, wired together. Also runs on a workstation for
 * development: with KUBECONFIG set and TP_INJECTOR_TLS_CERT/KEY pointing at local files.
 */
import { readFileSync, statSync } from 'node:fs';
import { runProgram } from '../shared/program.js';
import { admit } from './admit.js';
import { parseInjectorEnv } from './env.js';
import { createKubeAdapter } from './kube.js';
import { PreInjector } from './pre-inject.js';
import { startWebhookServer, type TlsFiles } from './webhook.js';

// The kubelet updates a mounted Secret within about a minute of a change; checking as often
// keeps a rotated certificate from outliving the old one by much.
const TLS_CHECK_MS = 60_000;

void runProgram({
  name: 'agent-injector',
  parseEnv: () => parseInjectorEnv(process.env),
  start: async (config, log) => {
    const readTls = (): TlsFiles => ({ cert: readFileSync(config.tlsCertPath), key: readFileSync(config.tlsKeyPath) });
    const tlsStamp = (): string => [config.tlsCertPath, config.tlsKeyPath].map((p) => statSync(p).mtimeMs).join(':');

    const adapter = createKubeAdapter(log);
    const preInjector = new PreInjector(adapter.kube, config.build);
    const server = await startWebhookServer({
      port: config.port,
      tls: readTls(),
      admit: (request) => admit(request, { kube: adapter.kube, managerNamespace: config.namespace, preInjector }),
      log,
      ready: () => adapter.synced(),
    });
    log.info('serving the webhook', { port: server.port });
    try {
      await adapter.start();
      log.info('agent configurations loaded');
    } catch (err: unknown) {
      // Not fatal: the adapter retries, and /healthz says 503 until it has listed them.
      log.warn('cannot list agent configurations yet', { error: err instanceof Error ? err.message : String(err) });
    }

    let stamp = tlsStamp();
    const tlsTimer = setInterval(() => {
      try {
        const now = tlsStamp();
        if (now === stamp) return;
        server.setTls(readTls());
        stamp = now;
        log.info('reloaded the TLS certificate');
      } catch (err: unknown) {
        log.warn('cannot reload the TLS certificate', { error: err instanceof Error ? err.message : String(err) });
      }
    }, TLS_CHECK_MS);
    tlsTimer.unref();

    return async () => {
      clearInterval(tlsTimer);
      await adapter.stop();
      await server.close();
    };
  },
});
