import t from 'tap';
import { cacheDir, daemonLogPath, daemonSocketPath } from '../../src/daemon/paths.js';

t.test('the socket lives under XDG_RUNTIME_DIR when set', (t) => {
  t.equal(daemonSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' }, '/home/a'), '/run/user/1000/telepresence-ts/daemon.sock');
  t.end();
});

t.test('else under ~/.cache', (t) => {
  t.equal(daemonSocketPath({}, '/home/a'), '/home/a/.cache/telepresence-ts/daemon.sock');
  t.equal(daemonSocketPath({ XDG_RUNTIME_DIR: '' }, '/home/a'), '/home/a/.cache/telepresence-ts/daemon.sock');
  t.end();
});

t.test('the log lives in the cache folder, which honours XDG_CACHE_HOME', (t) => {
  t.equal(daemonLogPath({}, '/home/a'), '/home/a/.cache/telepresence-ts/daemon.log');
  t.equal(cacheDir({ XDG_CACHE_HOME: '/c' }, '/home/a'), '/c/telepresence-ts');
  t.end();
});
