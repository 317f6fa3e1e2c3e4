import type { CommandModule } from 'yargs';
import type { GlobalOptions } from '../global-options.js';

/** What commands/index.ts lists: every command, whatever options it adds. */
export type AnyCommand = CommandModule<GlobalOptions, GlobalOptions>;

/**
 * Erases a command's own option types so that one list can hold them all. yargs checks the options
 * at run time against the builder, so the handler still receives what its type says.
 */
export function defineCommand<A extends GlobalOptions>(command: CommandModule<GlobalOptions, A>): AnyCommand {
  return command as unknown as AnyCommand;
}
