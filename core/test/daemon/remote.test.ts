import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseDotenv } from '../../src/daemon/remote-env.js';
import { CONNECT_ARGS, daemonSetup, spec } from '../fixtures/daemon-setup.js';

async function connected(t: Test) {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  return s;
}

t.test('an intercept brings the container environment and writes the files asked for', async (t) => {
  const s = await connected(t);
  const dir = mkdtempSync(join(tmpdir(), 'tp-remote-env-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  s.manager.environment = { ...s.manager.environment, env: { GREETING: 'hello', SECRET: 'a b' }, mounts: ['/etc/config'] };
  const envFile = join(dir, 'web.env');
  const envJson = join(dir, 'web.json');
  const info = await s.daemon.intercept(spec('web', 8080), () => undefined, { envFile, envJson });
  const remote = s.daemon.remoteOf(info.spec?.name ?? '');
  const want = {
    GREETING: 'hello',
    SECRET: 'a b',
    TELEPRESENCE_ROOT: '',
    TELEPRESENCE_MOUNTS: '/etc/config',
    TELEPRESENCE_INTERCEPT_ID: info.id,
    TELEPRESENCE_CONTAINER: 'app',
  };
  t.strictSame(remote, { name: 'web-default', environment: want, mountPoint: '', mounts: ['/etc/config'], envFile, envJson });
  t.strictSame(parseDotenv(readFileSync(envFile, 'utf8')), want, 'the dotenv file');
  t.strictSame(JSON.parse(readFileSync(envJson, 'utf8')), want, 'the JSON file');
  t.equal(statSync(envFile).mode & 0o777, 0o600, 'readable by the user alone (it holds secrets)');
  t.strictSame(s.daemon.snapshot().remotes, [remote], 'in the state the front ends watch');
  await s.daemon.leave('web-default');
  t.equal(s.daemon.remoteOf('web-default'), undefined, 'forgotten on leave');
  t.strictSame(s.daemon.snapshot().remotes, []);
});

t.test('a file that cannot be written: an error, and the intercept is removed again', async (t) => {
  const s = await connected(t);
  await t.rejects(s.daemon.intercept(spec('web', 8080), () => undefined, { envFile: '/nonexistent/dir/web.env' }), { code: 'env-file-unwritable', message: /\/nonexistent\/dir\/web\.env/ });
  t.equal(s.manager.intercepts.size, 0, 'nothing left on the manager');
  t.strictSame(s.daemon.snapshot().intercepts, [], 'nor in the daemon');
});

t.test('relative file paths and a mount without a mounter are refused before anything happens', async (t) => {
  const s = await connected(t);
  await t.rejects(s.daemon.intercept(spec('web', 8080), () => undefined, { envFile: 'web.env' }), { code: 'bad-usage' });
  await t.rejects(s.daemon.intercept(spec('web', 8080), () => undefined, { mount: true }), { code: 'mount-unavailable' });
  t.notOk(s.manager.calls.includes('PrepareIntercept'), 'the manager was not asked');
});
