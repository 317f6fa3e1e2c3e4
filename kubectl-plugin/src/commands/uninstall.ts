import { TpError, uninstallEverything, type DaemonApi } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon, managerNamespaceOption } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print, progressTo } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface UninstallArgs extends GlobalOptions {
  'manager-namespace': string;
  agent: string[] | undefined;
  'all-agents': boolean;
  everything: boolean;
}

const CHOOSE_HINT = 'pass one of --agent <workload>..., --all-agents, --everything';

/** `uninstall`: removes agents (through the manager), or everything install created. */
export function uninstallCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<UninstallArgs>({
    command: 'uninstall',
    describe: 'Remove agents, or everything telepresence-ts installed',
    builder: (y) =>
      y.options({
        ...managerNamespaceOption,
        agent: { alias: 'd', type: 'string', array: true, describe: 'Remove the agent of these workloads' },
        'all-agents': { alias: 'a', type: 'boolean', default: false, describe: 'Remove every agent of the namespace' },
        everything: { alias: 'e', type: 'boolean', default: false, describe: 'Remove every agent, the traffic-manager and its namespace' },
      }),
    handler: async (argv) => {
      const agents = argv.agent ?? [];
      const modes = [agents.length > 0, argv['all-agents'], argv.everything].filter(Boolean).length;
      if (modes !== 1) {
        throw new TpError('user', 'bad-usage', modes === 0 ? 'nothing to uninstall' : 'choose one kind of uninstall', { hint: CHOOSE_HINT });
      }
      if (!argv.everything) {
        const { daemon } = await connectedDaemon(deps, argv, argv['manager-namespace']);
        try {
          const res = await daemon.uninstallAgents({ namespace: argv.namespace ?? '', workloadNames: agents, all: argv['all-agents'], allNamespaces: false });
          print(deps.io, argv.output, { removed: res.removed }, () => (res.removed.length === 0 ? 'No agents removed\n' : `Removed the agents of ${res.removed.join(', ')}\n`));
        } finally {
          daemon.close();
        }
        return;
      }
      await everything(deps, argv);
    },
  });
}

async function everything(deps: CommandDeps, argv: UninstallArgs): Promise<void> {
  const kube = await deps.kube({ kubeconfig: argv.kubeconfig, context: argv.context });
  const progress = progressTo(deps.io);
  // The manager rolls the agents out; when it cannot be reached, the objects still go.
  let daemon: DaemonApi | undefined;
  try {
    daemon = (await connectedDaemon(deps, argv, argv['manager-namespace'])).daemon;
  } catch (err: unknown) {
    progress(`not removing agents through the traffic-manager: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    const connected = daemon;
    const result = await uninstallEverything(
      {
        kube,
        clock: deps.clock,
        progress,
        removeAllAgents:
          connected === undefined
            ? undefined
            : async () => (await connected.uninstallAgents({ namespace: '', workloadNames: [], all: true, allNamespaces: true })).removed,
      },
      argv['manager-namespace'],
    );
    if (connected !== undefined) {
      // Its manager is gone: a connection to it is useless now.
      await connected.quit();
    }
    print(deps.io, argv.output, result, () => `Removed ${result.agentsRemoved.length} agents and ${result.deleted.length} objects; telepresence-ts is uninstalled\n`);
  } finally {
    daemon?.close();
  }
}
