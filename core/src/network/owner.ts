/** The owner's primary group, as whom (with the owner's uid) the packet engine runs. */
import type { ProcessRunner } from '../process/process-runner.js';

/**
 * `$SUDO_GID` when sudo says the owner is its caller; else what `id -g <uid>` says (the password
 * database, NSS included); else the uid itself: a user without a passwd entry has no primary
 * group to find, and user-private groups make gid = uid the likeliest right answer.
 */
export async function primaryGroupOf(uid: number, env: NodeJS.ProcessEnv, runner: ProcessRunner): Promise<number> {
  const sudoGid = Number(env.SUDO_GID);
  if (env.SUDO_UID === String(uid) && Number.isInteger(sudoGid) && env.SUDO_GID !== '') return sudoGid;
  const out = await runner.run('id', ['-g', '--', String(uid)], { timeoutMs: 5_000 });
  const gid = Number(out.stdout.trim());
  return out.exitCode === 0 && out.stdout.trim() !== '' && Number.isInteger(gid) ? gid : uid;
}
