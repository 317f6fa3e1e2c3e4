import t from 'tap';
import { formatDotenv, formatEnvJson, localEnvironment, parseDotenv } from '../../src/daemon/remote-env.js';

const ENV = {
  PLAIN: 'hello',
  URL: 'http://db:5432/app?x=1',
  EMPTY: '',
  SPACES: 'two words',
  TRICKY: 'a "quoted" $value with \\ and\nsecond line\ttab',
};

t.test('dotenv: plain values bare, others double-quoted with escapes, names in order', (t) => {
  const lines = [
    'EMPTY=',
    'PLAIN=hello',
    'SPACES="two words"',
    'TRICKY="a \\"quoted\\" \\$value with \\\\ and\\nsecond line\\ttab"',
    // `?` is not in the plain set.
    'URL="http://db:5432/app?x=1"',
  ];
  t.equal(formatDotenv(ENV), lines.map((l) => `${l}\n`).join(''));
  t.strictSame(parseDotenv(formatDotenv(ENV)), ENV, 'reads back exactly');
  t.end();
});

t.test('parseDotenv skips comments and blank lines', (t) => {
  t.strictSame(parseDotenv('# a comment\n\nA=1\nB="x y"\n'), { A: '1', B: 'x y' });
  t.end();
});

t.test('the JSON form is one flat object', (t) => {
  t.strictSame(JSON.parse(formatEnvJson(ENV)), ENV);
  t.end();
});

t.test('the client adds where the volumes are and which intercept it is', (t) => {
  t.strictSame(localEnvironment({ A: '1' }, { interceptId: 's:web', containerName: 'app', mountPoint: '/tmp/m', mounts: ['/etc/a', '/data'] }), {
    A: '1',
    TELEPRESENCE_ROOT: '/tmp/m',
    TELEPRESENCE_MOUNTS: '/etc/a:/data',
    TELEPRESENCE_INTERCEPT_ID: 's:web',
    TELEPRESENCE_CONTAINER: 'app',
  });
  t.end();
});
