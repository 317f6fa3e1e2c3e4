/**
 * Every file-system call on a mount point is asynchronous: sshfs reaches the agent through a
 * port-forward served by this process's event loop, so a synchronous call on our own mount would
 * wait for itself.
 *
 * Remote volumes on the workstation (ADR 0003): a real sshfs (FUSE) per intercept, speaking SFTP
 * straight to the agent's sftp-server (`-o directport`) through a Kubernetes port-forward that the
 * daemon opens. This module owns the mount point's life: the checks before an intercept, the
 * mount, the unmount, and the clean-up of mounts a killed daemon left behind.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { TpError } from '../errors.js';
import type { ProcessRunner, RunningProcess } from '../process/process-runner.js';
import { executableIn, pathDirs } from '../process/which.js';
import type { Logger } from './logger.js';

/** Start of the file-system name of every mount we make: `telepresence-ts:<daemon pid>:<intercept>`. */
export const MOUNT_SOURCE_PREFIX = 'telepresence-ts:';

/** sshfs connects within a second or two through a healthy port-forward; a minute means it will not. */
const MOUNT_TIMEOUT_MS = 30_000;
const MOUNT_POLL_MS = 100;
/** After the unmount, sshfs exits by itself within milliseconds; then it is killed. */
const SSHFS_EXIT_GRACE_MS = 5_000;

export interface PreparedMount {
  readonly dir: string;
  /** True when we made the directory (and so remove it again). */
  readonly created: boolean;
}

export interface ActiveMount extends PreparedMount {
  readonly sshfs: RunningProcess;
  /** Closes what carries the connection (the port-forward). */
  readonly closeTransport: () => Promise<void>;
}

export interface MounterOptions {
  readonly runner: ProcessRunner;
  readonly log: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** The mount table to read; /proc/self/mountinfo. */
  readonly mountInfoPath?: string;
  /** This daemon's pid, written into its mounts' names. */
  readonly pid?: number;
  /** Whether a pid is alive; `process.kill(pid, 0)`. */
  readonly isAlive?: (pid: number) => boolean;
}

/** One line of /proc/self/mountinfo, the parts we read. */
interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

/** The mount table's `\040`-style escapes undone. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const mountPoint = left.split(' ')[4];
    const [fsType, source] = right.split(' ');
    if (mountPoint === undefined || fsType === undefined || source === undefined) continue;
    entries.push({ mountPoint: unescapeMountField(mountPoint), fsType, source: unescapeMountField(source) });
  }
  return entries;
}

/** Whether `pid` runs (a process we may not signal counts; a zombie does not). */
export function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed daemon stays a zombie until whoever inherited it reaps it, and a zombie still takes
  // signal 0; it serves no mount any more.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

function badMountPoint(dir: string, why: string): TpError {
  return new TpError('user', 'bad-mount-point', `cannot mount the remote volumes on ${dir}: ${why}`, {
    hint: 'pass an empty directory with --mount <dir> (or a path that does not exist yet), or --mount=false to skip the volumes',
  });
}

export class Mounter {
  readonly #runner: ProcessRunner;
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #mountInfoPath: string;
  readonly #pid: number;
  readonly #isAlive: (pid: number) => boolean;

  constructor(options: MounterOptions) {
    this.#runner = options.runner;
    this.#log = options.log;
    this.#env = options.env ?? process.env;
    this.#mountInfoPath = options.mountInfoPath ?? '/proc/self/mountinfo';
    this.#pid = options.pid ?? process.pid;
    this.#isAlive = options.isAlive ?? defaultIsAlive;
  }

  /** The full path of `command` on PATH, or undefined. */
  which(command: string): string | undefined {
    return executableIn(pathDirs(this.#env), command);
  }

  /** `sshfs-missing` unless sshfs and a fusermount are installed and /dev/fuse exists. */
  requireSshfs(): void {
    const hint = 'install sshfs (Debian and Ubuntu: sudo apt-get install sshfs), or pass --mount=false to skip the volumes';
    if (this.which('sshfs') === undefined) {
      throw new TpError('config', 'sshfs-missing', 'cannot mount the remote volumes: sshfs is not installed (not found on PATH)', { hint });
    }
    if (this.which('fusermount3') === undefined && this.which('fusermount') === undefined) {
      throw new TpError('config', 'sshfs-missing', 'cannot mount the remote volumes: fusermount is not installed (package fuse3)', { hint });
    }
    try {
      statSync('/dev/fuse');
    } catch {
      throw new TpError('config', 'fuse-missing', 'cannot mount the remote volumes: /dev/fuse does not exist', {
        hint: 'load the fuse kernel module (modprobe fuse), or in a container run it with --device /dev/fuse; or pass --mount=false',
      });
    }
  }

  /**
   * Checks (and if needed makes) the mount point before anything is changed in the cluster: an
   * absolute path that is an empty directory or does not exist; undefined: a fresh temporary one.
   * A dead mount left on it by a killed daemon is cleaned first.
   */
  async prepare(name: string, requested: string | undefined): Promise<PreparedMount> {
    this.requireSshfs();
    if (requested === undefined || requested === '') {
      return { dir: mkdtempSync(join(tmpdir(), `telepresence-${name}-`)), created: true };
    }
    if (!isAbsolute(requested)) throw badMountPoint(requested, 'the path is not absolute');
    const dir = requested;
    await this.#cleanIfStale(dir);
    if (this.#mounts().some((m) => m.mountPoint === dir)) throw badMountPoint(dir, 'something is mounted there already');
    let isDir: boolean;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch (err: unknown) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw badMountPoint(dir, (err as Error).message);
      try {
        mkdirSync(dir, { recursive: true });
      } catch (mkErr: unknown) {
        throw badMountPoint(dir, (mkErr as Error).message);
      }
      return { dir, created: true };
    }
    if (!isDir) throw badMountPoint(dir, 'it is not a directory');
    if ((await readdir(dir)).length > 0) throw badMountPoint(dir, 'the directory is not empty');
    return { dir, created: false };
  }

  /**
   * Mounts `remotePath` of the SFTP server reachable on 127.0.0.1:`localPort` at the prepared
   * directory, and waits until the kernel lists the mount. On failure nothing stays mounted or
   * running; the transport and the directory are the caller's to release.
   */
  async mount(name: string, prepared: PreparedMount, remotePath: string, localPort: number, closeTransport: () => Promise<void>, allowOther = false): Promise<ActiveMount> {
    const args = [
      '-f',
      '-o', `directport=${localPort}`,
      // A port-forward stream that breaks is reopened by connecting again.
      '-o', 'reconnect',
      // ConfigMap and Secret volumes are symlinks into a timestamped folder: show the files.
      '-o', 'follow_symlinks',
      '-o', `fsname=${MOUNT_SOURCE_PREFIX}${this.#pid}:${name}`,
      // Only the mounting user may read the files (secrets among them) unless a container must.
      ...(allowOther ? ['-o', 'allow_other'] : []),
      `127.0.0.1:${remotePath}`,
      prepared.dir,
    ];
    const sshfs = this.#runner.start('sshfs', args, { stdio: 'capture' });
    let exited = false;
    void sshfs.exited.then(() => (exited = true));
    const deadline = Date.now() + MOUNT_TIMEOUT_MS;
    while (!this.#mounts().some((m) => m.mountPoint === prepared.dir)) {
      if (exited || Date.now() > deadline) {
        sshfs.kill('SIGKILL');
        const exit = await sshfs.exited;
        const why = exit.startError !== undefined ? exit.startError.message : exited ? `sshfs exited (${exit.exitCode ?? exit.signal ?? '?'})` : `sshfs did not mount within ${MOUNT_TIMEOUT_MS / 1000} s`;
        throw new TpError('cluster', 'mount-failed', `cannot mount the remote volumes on ${prepared.dir}: ${why}: ${sshfs.output().trim()}`, {
          hint: 'check that the intercepted pod is running (the agent serves the volumes), or pass --mount=false',
        });
      }
      await new Promise((r) => setTimeout(r, MOUNT_POLL_MS));
    }
    // Listed is not working: sshfs mounts before its first SFTP exchange, and a server that hangs
    // up leaves a dead mount (ENOTCONN). One listing proves the round trip.
    try {
      await readdir(prepared.dir);
    } catch (err: unknown) {
      await this.#fusermount(prepared.dir, true);
      sshfs.kill('SIGKILL');
      await sshfs.exited;
      throw new TpError('cluster', 'mount-failed', `cannot mount the remote volumes on ${prepared.dir}: ${(err as Error).message}: ${sshfs.output().trim()}`, {
        hint: 'the traffic-agent could not serve the volumes; see its log (kubectl logs <pod> -c traffic-agent), or pass --mount=false',
      });
    }
    this.#log('info', `mounted ${remotePath} of intercept ${name} on ${prepared.dir} (sshfs pid ${sshfs.pid ?? '?'})`);
    return { ...prepared, sshfs, closeTransport };
  }

  /** Unmounts (lazily when busy), stops sshfs, closes the transport and removes a directory we made. */
  async unmount(m: ActiveMount): Promise<void> {
    await this.#fusermount(m.dir);
    const stopped = await Promise.race([m.sshfs.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), SSHFS_EXIT_GRACE_MS).unref())]);
    if (!stopped) {
      m.sshfs.kill('SIGKILL');
      await m.sshfs.exited;
    }
    await m.closeTransport();
    this.release(m);
  }

  /** Removes the directory when we made it (and it is empty). */
  release(prepared: PreparedMount): void {
    if (!prepared.created) return;
    try {
      rmdirSync(prepared.dir);
    } catch (err: unknown) {
      this.#log('warn', `cannot remove mount point ${prepared.dir}: ${(err as Error).message}`);
    }
  }

  /**
   * Lazily unmounts every mount of ours whose daemon is gone or whose sshfs is gone (the kernel
   * then answers ENOTCONN): what a killed daemon leaves. Returns the directories cleaned.
   */
  async cleanStale(): Promise<string[]> {
    const cleaned: string[] = [];
    for (const m of this.#mounts()) {
      if (!m.source.startsWith(MOUNT_SOURCE_PREFIX)) continue;
      if (await this.#cleanIfStale(m.mountPoint)) cleaned.push(m.mountPoint);
    }
    return cleaned;
  }

  async #cleanIfStale(dir: string): Promise<boolean> {
    const entry = this.#mounts().find((m) => m.mountPoint === dir);
    let dead = false;
    if (entry?.source.startsWith(MOUNT_SOURCE_PREFIX) === true) {
      // Ours: dead when its daemon is (a live one's, this one's included, is left alone).
      const pid = Number(entry.source.slice(MOUNT_SOURCE_PREFIX.length).split(':')[0]);
      dead = Number.isInteger(pid) && pid !== this.#pid && !this.#isAlive(pid);
    } else {
      try {
        await stat(dir);
      } catch (err: unknown) {
        // A FUSE mount whose server is gone.
        dead = (err as NodeJS.ErrnoException).code === 'ENOTCONN';
      }
    }
    if (!dead) return false;
    this.#log('info', `removing the stale mount on ${dir}`);
    await this.#fusermount(dir, true);
    return true;
  }

  /** `fusermount3 -u` (else `fusermount -u`); lazily (`-z`) when `lazy` or when busy. */
  async #fusermount(dir: string, lazy = false): Promise<void> {
    const tool = this.which('fusermount3') !== undefined ? 'fusermount3' : 'fusermount';
    if (!lazy) {
      const r = await this.#runner.run(tool, ['-u', dir], { timeoutMs: 10_000 });
      if (r.exitCode === 0) return;
      this.#log('warn', `${tool} -u ${dir}: ${r.stderr.trim()}; unmounting lazily`);
    }
    const r = await this.#runner.run(tool, ['-u', '-z', dir], { timeoutMs: 10_000 });
    if (r.exitCode !== 0 && this.#mounts().some((m) => m.mountPoint === dir)) {
      this.#log('warn', `${tool} -uz ${dir}: ${r.stderr.trim()}`);
    }
  }

  #mounts(): MountEntry[] {
    try {
      return parseMountInfo(readFileSync(this.#mountInfoPath, 'utf8'));
    } catch {
      return [];
    }
  }
}
