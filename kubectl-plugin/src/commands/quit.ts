import type { CommandDeps } from '../command-deps.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

/** `quit`: removes this workstation's intercepts, departs from the manager and stops the daemon. */
export function quitCommand(deps: CommandDeps): AnyCommand {
  return defineCommand({
    command: 'quit',
    describe: 'Disconnect and stop the daemon (its intercepts end)',
    handler: async (argv) => {
      const daemon = await deps.daemon({ start: false });
      if (daemon !== undefined) {
        try {
          await daemon.quit();
        } finally {
          daemon.close();
        }
      }
      const wasRunning = daemon !== undefined;
      print(deps.io, argv.output, { quit: wasRunning }, () => (wasRunning ? 'Telepresence daemon quit\n' : 'Telepresence daemon was not running\n'));
    },
  });
}
