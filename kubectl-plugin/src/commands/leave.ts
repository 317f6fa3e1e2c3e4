import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface LeaveArgs extends GlobalOptions {
  name: string;
}

/** `leave <name>`: removes one of this workstation's intercepts; the agent stays. */
export function leaveCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<LeaveArgs>({
    command: 'leave <name>',
    describe: 'Remove an intercept',
    builder: (y) => y.positional('name', { type: 'string', demandOption: true, describe: 'The intercept name' }),
    handler: async (argv) => {
      const { daemon } = await connectedDaemon(deps, argv);
      try {
        await daemon.leave(argv.name);
      } finally {
        daemon.close();
      }
      print(deps.io, argv.output, { left: argv.name }, () => `Intercept ${argv.name} removed\n`);
    },
  });
}
