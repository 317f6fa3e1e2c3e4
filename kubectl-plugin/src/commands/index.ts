import type { CommandDeps } from '../command-deps.js';
import { connectCommand } from './connect.js';
import { daemonForegroundCommand } from './daemon-foreground.js';
import { doctorCommand } from './doctor.js';
import type { AnyCommand } from './define.js';
import { installCommand } from './install.js';
import { ingestCommand } from './ingest.js';
import { interceptCommand } from './intercept.js';
import { leaveCommand } from './leave.js';
import { listCommand } from './list.js';
import { networkDaemonCommand } from './network-daemon.js';
import { quitCommand } from './quit.js';
import { replaceCommand } from './replace.js';
import { statusCommand } from './status.js';
import { uninstallCommand } from './uninstall.js';
import { versionCommand } from './version.js';
import { watchCommand } from './watch.js';
import { wiretapCommand } from './wiretap.js';

/**
 * Every verb of the CLI, in help order. Listed by hand because esbuild cannot bundle a directory
 * scan (yargs' commandDir).
 */
export function commands(deps: CommandDeps): readonly AnyCommand[] {
  return [
    installCommand(deps),
    connectCommand(deps),
    statusCommand(deps),
    listCommand(deps),
    interceptCommand(deps),
    ingestCommand(deps),
    replaceCommand(deps),
    wiretapCommand(deps),
    watchCommand(deps),
    leaveCommand(deps),
    uninstallCommand(deps),
    quitCommand(deps),
    doctorCommand(deps),
    versionCommand(deps),
    daemonForegroundCommand(deps),
    networkDaemonCommand(deps),
  ];
}
