import type { CommandDeps } from '../command-deps.js';
import { defineCommand, type AnyCommand } from './define.js';

/** What `version --output json` prints; `daemon` and `manager` appear when a daemon runs (and is connected). */
export interface VersionReport {
  client: { version: string };
  daemon?: { version: string };
  /** `agentImage`: the traffic-agent image the manager injects into workloads. */
  manager?: { version: string; agentImage?: string };
}

export function versionReport(clientVersion: string, daemonVersion?: string, managerVersion?: string, agentImage?: string): VersionReport {
  const report: VersionReport = { client: { version: clientVersion } };
  if (daemonVersion !== undefined && daemonVersion !== '') {
    report.daemon = { version: daemonVersion };
  }
  if (managerVersion !== undefined && managerVersion !== '') {
    report.manager = { version: managerVersion, ...(agentImage !== undefined && agentImage !== '' ? { agentImage } : {}) };
  }
  return report;
}

/** Renders the report as `--output text` shows it. */
export function formatVersionText(report: VersionReport): string {
  let text = `Client: v${report.client.version}\n`;
  if (report.daemon !== undefined) {
    text += `Daemon: v${report.daemon.version}\n`;
  }
  if (report.manager !== undefined) {
    text += `Traffic manager: v${report.manager.version}\n`;
    if (report.manager.agentImage !== undefined) text += `Traffic agent image: ${report.manager.agentImage}\n`;
  }
  return text;
}

/** `kubectl telepresence version`: the client's version, and the daemon's, the manager's and its agent image when there are. */
export function versionCommand(deps: CommandDeps): AnyCommand {
  return defineCommand({
    command: 'version',
    describe: 'Show version information',
    handler: async (argv) => {
      const daemon = await deps.daemon({ start: false });
      let report = versionReport(deps.version);
      if (daemon !== undefined) {
        try {
          const v = await daemon.version();
          report = versionReport(deps.version, v.daemonVersion, v.managerVersion, v.agentImage);
        } finally {
          daemon.close();
        }
      }
      deps.io.out(argv.output === 'json' ? `${JSON.stringify(report)}\n` : formatVersionText(report));
    },
  });
}
