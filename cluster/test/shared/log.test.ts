import t from 'tap';
import { createLogger } from '../../src/shared/log.js';

const fixedNow = (): Date => new Date('2024-01-02T03:04:05.000Z');

t.test('writes one JSON line per entry at or above the level', (t) => {
  const lines: string[] = [];
  const log = createLogger('traffic-manager', 'info', (l) => lines.push(l), fixedNow);
  log.debug('hidden');
  log.info('starting', { port: 8081 });
  log.error('boom');
  t.same(lines, [
    '{"time":"2024-01-02T03:04:05.000Z","level":"info","program":"traffic-manager","msg":"starting","port":8081}\n',
    '{"time":"2024-01-02T03:04:05.000Z","level":"error","program":"traffic-manager","msg":"boom"}\n',
  ]);
  t.end();
});

t.test('debug shows everything, error only errors', (t) => {
  for (const [level, want] of [
    ['debug', 4],
    ['info', 3],
    ['warn', 2],
    ['error', 1],
  ] as const) {
    let n = 0;
    const log = createLogger('p', level, () => n++, fixedNow);
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    t.equal(n, want, level);
  }
  t.end();
});
