/**
 * The Mounter against a real sshfs and FUSE: an OpenSSH sftp-server on a local TCP port stands in
 * for the traffic-agent's (whose port the daemon reaches through a port-forward). The TCP bridge
 * runs on this process's event loop, so files on the mount are read asynchronously only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultIsAlive, Mounter, parseMountInfo } from '../../src/daemon/mounts.js';
import { nodeProcessRunner } from '../../src/process/node-process-runner.js';
import { eventually } from '../fixtures/eventually.js';

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
const missing = [SFTP_SERVER, '/dev/fuse', '/usr/bin/sshfs'].filter((p) => !existsSync(p));
// These tests need FUSE and the two OpenSSH programs; scripts/install-deps.sh installs them.
const skip = missing.length > 0 ? `needs ${missing.join(', ')} (apt-get install sshfs openssh-sftp-server)` : false;

/** A TCP port whose every connection talks to a fresh sftp-server (as the agent's does). */
async function sftpOnTcp(t: Test): Promise<number> {
  const children = new Set<ChildProcess>();
  const server: Server = createServer((socket) => {
    const child = spawn(SFTP_SERVER, ['-e'], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.add(child);
    // Either end may go first when a mount is taken down (EPIPE, ECONNRESET): that ends the pair.
    for (const end of [socket, child.stdin, child.stdout]) end.on('error', () => undefined);
    socket.pipe(child.stdin);
    child.stdout.pipe(socket);
    socket.on('close', () => child.kill());
    child.on('close', () => {
      children.delete(child);
      socket.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const c of children) c.kill();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

function mounted(dir: string): boolean {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).some((m) => m.mountPoint === dir);
}

const logs: string[] = [];
const log = (level: string, message: string): void => void logs.push(`${level} ${message}`);

t.test('parseMountInfo reads mount points, types and sources, escapes undone', (t) => {
  const text = '36 35 98:0 / /mnt/a\\040b rw,noatime shared:1 - fuse.sshfs telepresence-ts:42:web rw,user_id=0\n37 35 0:5 / /proc rw - proc proc rw\n';
  t.strictSame(parseMountInfo(text), [
    { mountPoint: '/mnt/a b', fsType: 'fuse.sshfs', source: 'telepresence-ts:42:web' },
    { mountPoint: '/proc', fsType: 'proc', source: 'proc' },
  ]);
  t.end();
});

t.test('prepare refuses what it cannot mount on, and touches nothing', { skip }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'tp-mount-test-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const m = new Mounter({ runner: nodeProcessRunner, log });
  mkdirSync(join(base, 'full'));
  writeFileSync(join(base, 'full', 'keep'), 'x');
  writeFileSync(join(base, 'file'), 'x');
  const cases: ReadonlyArray<[string, RegExp]> = [
    [join(base, 'full'), /the directory is not empty/],
    [join(base, 'file'), /it is not a directory/],
    ['relative/dir', /not absolute/],
  ];
  for (const [dir, message] of cases) {
    await t.rejects(m.prepare('web', dir), { code: 'bad-mount-point', category: 'user', message, hint: /--mount=false/ }, dir);
  }
  t.equal(readFileSync(join(base, 'full', 'keep'), 'utf8'), 'x', 'left alone');
  const made = await m.prepare('web', join(base, 'new', 'dir'));
  t.strictSame(made, { dir: join(base, 'new', 'dir'), created: true }, 'a missing directory is made');
  m.release(made);
  t.notOk(existsSync(made.dir), 'and removed again');
  const temp = await m.prepare('web', undefined);
  t.ok(temp.created && existsSync(temp.dir), 'a temporary directory without --mount <dir>');
  m.release(temp);
});

t.test('sshfs missing: a config error naming the package and the way out', async (t) => {
  const m = new Mounter({ runner: nodeProcessRunner, log, env: { PATH: '/nonexistent' } });
  await t.rejects(m.prepare('web', undefined), { code: 'sshfs-missing', category: 'config', message: /sshfs is not installed/, hint: /apt-get install sshfs.*--mount=false/ });
});

t.test('mount, read and write through it, unmount', { skip }, async (t) => {
  const remote = mkdtempSync(join(tmpdir(), 'tp-remote-'));
  t.teardown(() => rmSync(remote, { recursive: true, force: true }));
  mkdirSync(join(remote, 'etc'));
  writeFileSync(join(remote, 'etc', 'app.conf'), 'answer=42\n');
  const port = await sftpOnTcp(t);
  const m = new Mounter({ runner: nodeProcessRunner, log });
  const prepared = await m.prepare('web', undefined);
  let closed = false;
  const active = await m.mount('web', prepared, remote, port, async () => void (closed = true));
  t.ok(mounted(prepared.dir), 'the kernel lists the mount');
  t.equal(await readFile(join(prepared.dir, 'etc', 'app.conf'), 'utf8'), 'answer=42\n', 'a remote file reads');
  await writeFile(join(prepared.dir, 'local.txt'), 'from here\n');
  t.equal(readFileSync(join(remote, 'local.txt'), 'utf8'), 'from here\n', 'a local write lands remotely');
  await m.unmount(active);
  t.notOk(mounted(prepared.dir), 'unmounted');
  t.ok(closed, 'the transport is closed');
  t.notOk(existsSync(prepared.dir), 'the temporary directory is gone');
});

t.test('a server that hangs up: mount-failed, nothing left mounted', { skip }, async (t) => {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const m = new Mounter({ runner: nodeProcessRunner, log });
  const prepared = await m.prepare('web', undefined);
  t.teardown(() => m.release(prepared));
  await t.rejects(m.mount('web', prepared, '/', (server.address() as AddressInfo).port, async () => undefined), { code: 'mount-failed' });
  t.notOk(mounted(prepared.dir), 'nothing mounted');
});

t.test("cleanStale removes the mounts of a daemon that is gone, and leaves a live one's", { skip }, async (t) => {
  const remote = mkdtempSync(join(tmpdir(), 'tp-remote-'));
  t.teardown(() => rmSync(remote, { recursive: true, force: true }));
  const port = await sftpOnTcp(t);
  // Two "daemons": pid 1 (alive) and a pid no process has.
  const DEAD = 2 ** 22 + 17;
  const alive = (pid: number): boolean => pid !== DEAD;
  const live = new Mounter({ runner: nodeProcessRunner, log, pid: 1, isAlive: alive });
  const dead = new Mounter({ runner: nodeProcessRunner, log, pid: DEAD, isAlive: alive });
  const liveMount = await live.mount('a', await live.prepare('a', undefined), remote, port, async () => undefined);
  t.teardown(() => live.unmount(liveMount));
  const deadMount = await dead.mount('b', await dead.prepare('b', undefined), remote, port, async () => undefined);
  t.teardown(() => dead.release(deadMount));

  const next = new Mounter({ runner: nodeProcessRunner, log, isAlive: alive });
  t.strictSame(await next.cleanStale(), [deadMount.dir], "the dead daemon's mount only");
  t.notOk(mounted(deadMount.dir), 'unmounted');
  t.ok(mounted(liveMount.dir), "the live daemon's mount stays");
  await deadMount.sshfs.exited;
});

t.test('a killed orphan counts as dead, reaped or still a zombie', async (t) => {
  // Orphaned like a detached daemon whose CLI exited; whether its new parent reaps it at once
  // depends on the machine's init, so both outcomes must read as dead.
  const child = spawn('bash', ['-c', 'setsid sleep 60 >/dev/null 2>&1 & echo $!']);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.on('exit', resolve));
  const pid = Number(out.trim());
  t.ok(defaultIsAlive(pid), 'alive while it runs');
  process.kill(pid, 'SIGKILL');
  await eventually(() => !defaultIsAlive(pid), 5_000, 'the killed process read as dead');
  t.notOk(defaultIsAlive(pid), 'dead once killed');
});
