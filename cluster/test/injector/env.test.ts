import t from 'tap';
import { parseInjectorEnv } from '../../src/injector/env.js';

t.test('defaults', (t) => {
  t.strictSame(parseInjectorEnv({}), {
    namespace: 'tp-system',
    port: 8443,
    tlsCertPath: '/etc/agent-injector/tls/tls.crt',
    tlsKeyPath: '/etc/agent-injector/tls/tls.key',
    logLevel: 'info',
  });
  t.end();
});

t.test('every variable read', (t) => {
  t.strictSame(
    parseInjectorEnv({
      TP_MANAGER_NAMESPACE: 'tele',
      TP_INJECTOR_PORT: '443',
      TP_INJECTOR_TLS_CERT: '/tls/c.pem',
      TP_INJECTOR_TLS_KEY: '/tls/k.pem',
      TP_LOG_LEVEL: 'warn',
    }),
    { namespace: 'tele', port: 443, tlsCertPath: '/tls/c.pem', tlsKeyPath: '/tls/k.pem', logLevel: 'warn' },
  );
  t.end();
});

t.test('the manager port does not configure the injector', (t) => {
  t.equal(parseInjectorEnv({ TP_MANAGER_PORT: '1234' }).port, 8443);
  t.end();
});

t.test('bad values fail with a config error', (t) => {
  t.throws(() => parseInjectorEnv({ TP_INJECTOR_PORT: '99999', TP_LOG_LEVEL: 'loud' }), {
    category: 'config',
    code: 'bad-environment',
    message: /TP_INJECTOR_PORT="99999" is not a port number.*TP_LOG_LEVEL="loud"/,
    hint: 'fix the environment of the agent-injector container',
  });
  t.end();
});
