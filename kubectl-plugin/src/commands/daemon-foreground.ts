import type { CommandDeps } from '../command-deps.js';
import { defineCommand, type AnyCommand } from './define.js';

/** Hidden: the daemon process itself, started detached by commands that need it. */
export function daemonForegroundCommand(deps: CommandDeps): AnyCommand {
  return defineCommand({
    command: 'daemon-foreground',
    describe: false,
    handler: () => deps.runDaemon(),
  });
}
