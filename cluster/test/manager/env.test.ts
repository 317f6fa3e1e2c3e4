import t from 'tap';
import { parseManagerEnv } from '../../src/manager/env.js';

t.test('defaults', (t) => {
  t.strictSame(parseManagerEnv({}), { namespace: 'tp-system', port: 8081, logLevel: 'info' });
  t.end();
});

t.test('every variable read', (t) => {
  t.strictSame(parseManagerEnv({ TP_MANAGER_NAMESPACE: 'tele', TP_MANAGER_PORT: '9000', TP_LOG_LEVEL: 'debug' }), {
    namespace: 'tele',
    port: 9000,
    logLevel: 'debug',
  });
  t.end();
});

t.test('bad values fail with one config error naming each', (t) => {
  t.throws(() => parseManagerEnv({ TP_MANAGER_NAMESPACE: 'Tele', TP_MANAGER_PORT: 'http' }), {
    category: 'config',
    message: /^invalid environment: TP_MANAGER_NAMESPACE="Tele" .*; TP_MANAGER_PORT="http" is not a port number/,
    hint: 'fix the environment of the traffic-manager container',
  });
  t.end();
});
