import { checkRegistry, DEFAULT_IMAGE_REGISTRY, DEFAULT_INSTALL_TIMEOUT_MS, defaultImages, install, type InstallResult } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { managerNamespaceOption } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print, progressTo } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface InstallArgs extends GlobalOptions {
  'manager-namespace': string;
  registry: string | undefined;
  'manager-image': string | undefined;
  'injector-image': string | undefined;
  'agent-image': string | undefined;
  wait: boolean;
  timeout: number;
  'dry-run': boolean;
}

export function formatInstallText(r: InstallResult, dryRun: boolean): string {
  if (dryRun) {
    return `Dry run: the API server accepted ${r.applied.length} objects for namespace ${r.namespace}\n`;
  }
  return `Traffic manager installed in namespace ${r.namespace} (${r.images.manager}, ${r.images.injector}; agents ${r.images.agent})\n`;
}

/** `install`: the traffic-manager, agent-injector and webhook; re-running updates them in place. */
export function installCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<InstallArgs>({
    command: 'install',
    describe: 'Install or upgrade the traffic-manager in the cluster',
    builder: (y) =>
      y.options({
        ...managerNamespaceOption,
        registry: {
          type: 'string',
          describe: `Registry (host[:port][/path]) to pull the three images from, tagged with this CLI's version (default ${DEFAULT_IMAGE_REGISTRY})`,
        },
        'manager-image': { type: 'string', describe: `traffic-manager image (default ${defaultImages(deps.version).manager})` },
        'injector-image': { type: 'string', describe: `agent-injector image (default ${defaultImages(deps.version).injector})` },
        'agent-image': { type: 'string', describe: `traffic-agent image (default ${defaultImages(deps.version).agent})` },
        wait: { type: 'boolean', default: true, describe: 'Wait for the Deployments to become available' },
        timeout: { type: 'number', default: DEFAULT_INSTALL_TIMEOUT_MS / 1000, describe: 'Seconds to wait' },
        'dry-run': { type: 'boolean', default: false, describe: 'Validate with the API server without changing anything' },
      }),
    handler: async (argv) => {
      // Checked before anything in the cluster changes.
      if (argv.registry !== undefined) checkRegistry(argv.registry);
      const images = defaultImages(deps.version, argv.registry);
      const kube = await deps.kube({ kubeconfig: argv.kubeconfig, context: argv.context });
      const result = await install(
        { kube, clock: deps.clock, progress: progressTo(deps.io) },
        {
          namespace: argv['manager-namespace'],
          managerImage: argv['manager-image'] ?? images.manager,
          injectorImage: argv['injector-image'] ?? images.injector,
          agentImage: argv['agent-image'] ?? images.agent,
          wait: argv.wait,
          timeoutMs: argv.timeout * 1000,
          dryRun: argv['dry-run'],
        },
      );
      print(deps.io, argv.output, { ...result, dryRun: argv['dry-run'] }, () => formatInstallText(result, argv['dry-run']));
    },
  });
}
