import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Daemon } from '../../src/daemon/daemon.js';
import type { Mounter } from '../../src/daemon/mounts.js';
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
  t.strictSame(remote, { name: 'web-default', environment: want, mountPoint: '', mounts: ['/etc/config'], envFile, envJson, traffic: 'relayed', trafficReason: 'its agent takes no direct tunnels' });
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
  await t.rejects(s.daemon.intercept(spec('web', 8080), () => undefined, { envFile: 'web.env' }), { code: 'env-file-unwritable', category: 'user' });
  await t.rejects(s.daemon.intercept(spec('web', 8080), () => undefined, { mount: true }), { code: 'mount-unavailable' });
  t.notOk(s.manager.calls.includes('PrepareIntercept'), 'the manager was not asked');
});

t.test('volumes that cannot be mounted in the cluster: the intercept goes on, and says why', async (t) => {
  const s = await daemonSetup();
  const released: string[] = [];
  // Only the parts of Mounter the daemon calls; the forward's error is what sshfs cannot see.
  const mounter = {
    prepare: async () => ({ dir: '/tmp/tp-fake-mount', created: true }),
    mount: async () => {
      throw new Error('sshfs exited (1): remote host has disconnected');
    },
    release: (p: { dir: string }) => released.push(p.dir),
    unmount: async () => undefined,
  };
  Object.assign(s.kube, {
    portForward: async (_ns: string, _pod: string, _port: number, onError?: (err: Error) => void) => {
      onError?.(new Error('pods "web-1" is forbidden: cannot create resource "pods/portforward"'));
      return { localPort: 1, close: async () => undefined };
    },
  });
  const daemon = new Daemon({ version: '1.2.3', connector: s.connector, log: () => undefined, clientName: 'alice@laptop', installId: 'install-1', mounter: mounter as unknown as Mounter });
  t.teardown(async () => {
    await daemon.shutdown();
    s.manager.stop();
  });
  await daemon.connect(CONNECT_ARGS);
  s.manager.environment = { ...s.manager.environment, mounts: ['/etc/config'], sftpPort: 2222 };
  const lines: string[] = [];
  const info = await daemon.intercept(spec('web', 8080), (line) => lines.push(line), { mount: true });
  t.equal(s.manager.intercepts.size, 1, 'the intercept stays');
  t.match(daemon.remoteOf(info.spec?.name ?? ''), { mountPoint: '', mounts: ['/etc/config'] }, 'nothing is mounted');
  t.match(lines.join('\n'), /Volumes not mounted: .*pods\/portforward/, 'the port-forward\'s reason is shown');
  t.match(lines.join('\n'), /--mount=false/, 'with what to do');
  t.strictSame(released, ['/tmp/tp-fake-mount'], 'the prepared mount point is released');
});
