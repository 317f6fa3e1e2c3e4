import t from 'tap';
import { DEV_VERSION, VERSION, resolveVersion } from '../src/version.js';

t.test('unbundled code reports the development version', (t) => {
  // The tests run the TypeScript source directly, where esbuild's define is absent.
  t.equal(VERSION, DEV_VERSION);
  t.equal(DEV_VERSION, '0.0.0-dev');
  t.end();
});

t.test('resolveVersion', (t) => {
  t.equal(resolveVersion('1.2.3'), '1.2.3', 'build-time version wins');
  t.equal(resolveVersion(undefined), DEV_VERSION, 'no define');
  t.equal(resolveVersion(''), DEV_VERSION, 'empty define');
  t.end();
});
