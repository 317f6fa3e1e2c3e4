import type { CommandModule } from 'yargs';
import type { GlobalOptions } from '../global-options.js';
import type { CommandDeps } from '../command-deps.js';
import { versionCommand } from './version.js';

/**
 * Every verb of the CLI, in help order. Listed by hand because esbuild cannot bundle a directory
 * scan (yargs' commandDir).
 */
export function commands(deps: CommandDeps): ReadonlyArray<CommandModule<GlobalOptions, GlobalOptions>> {
  return [versionCommand(deps)];
}
