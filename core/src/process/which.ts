/** Finding programs the way a shell does: the one place that searches PATH. */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** The first `dir/command` of `dirs` that is executable, or undefined. */
export function executableIn(dirs: readonly string[], command: string): string | undefined {
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, command);
    if (isExecutable(path)) return path;
  }
  return undefined;
}

/** The folders of a PATH value. */
export function pathDirs(env: NodeJS.ProcessEnv): string[] {
  return (env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
}

/**
 * What a shell would run for `command`: the file itself when the command names a path (with a
 * `/`, relative to `cwd`), otherwise the first executable of that name on PATH; undefined when
 * there is none.
 */
export function findExecutable(command: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string | undefined {
  if (command === '') return undefined;
  if (command.includes('/')) {
    const path = isAbsolute(command) ? command : resolve(cwd, command);
    return isExecutable(path) ? path : undefined;
  }
  return executableIn(pathDirs(env), command);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
