import type { CommandModule } from 'yargs';
import type { GlobalOptions } from '../global-options.js';
import type { CommandDeps } from '../command-deps.js';

/** What `version --output json` prints. Later versions add `manager` and `agent` next to `client`. */
export interface VersionReport {
  client: { version: string };
}

export function versionReport(clientVersion: string): VersionReport {
  return { client: { version: clientVersion } };
}

/** Renders the report as `--output text` shows it. */
export function formatVersionText(report: VersionReport): string {
  return `Client: v${report.client.version}\n`;
}

/** `kubectl telepresence version`: prints the client's version (the cluster's once connected). */
export function versionCommand(deps: CommandDeps): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'version',
    describe: 'Show version information',
    handler: (argv) => {
      const report = versionReport(deps.version);
      deps.io.out(argv.output === 'json' ? `${JSON.stringify(report)}\n` : formatVersionText(report));
    },
  };
}
