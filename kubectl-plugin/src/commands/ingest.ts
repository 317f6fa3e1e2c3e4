import type { InterceptInfo, InterceptSpec } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import type { GlobalOptions } from '../global-options.js';
import { defineCommand, type AnyCommand } from './define.js';
import { engage } from './intercept.js';
import { dispositionName } from './list.js';
import { remoteOptions, type RemoteArgs } from '../launch.js';

interface IngestArgs extends GlobalOptions, RemoteArgs {
  workload: string;
  container: string | undefined;
  name: string | undefined;
}

/** The spec of an ingest: a workload's container, no port, no traffic. */
export function buildIngestSpec(argv: Pick<IngestArgs, 'workload' | 'container' | 'name' | 'namespace'>): InterceptSpec {
  return {
    name: argv.name ?? '',
    namespace: argv.namespace ?? '',
    workloadName: argv.workload,
    workloadKind: '',
    serviceName: '',
    servicePort: '',
    containerName: argv.container ?? '',
    localPort: 0,
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'ingest',
    ports: [],
  };
}

export function formatIngestText(ii: InterceptInfo): string {
  return (
    [
      `Using ${ii.spec?.workloadKind !== undefined && ii.spec.workloadKind !== '' ? ii.spec.workloadKind : 'workload'} ${ii.spec?.workloadName ?? ''}`,
      `   Ingest name    : ${ii.spec?.name ?? ''}`,
      `   State          : ${dispositionName(ii.disposition)}${ii.message !== '' ? ` (${ii.message})` : ''}`,
      `   Container      : ${ii.target?.containerName ?? ii.spec?.containerName ?? ''}`,
      '   Traffic        : none (the app in the cluster keeps every request)',
    ].join('\n') + '\n'
  );
}

/** `ingest <workload>`: a container's environment and volumes on the workstation, without its traffic. */
export function ingestCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<IngestArgs>({
    command: 'ingest <workload>',
    describe: "Bring a workload container's environment and volumes to the workstation, without its traffic",
    builder: (y) =>
      y
        .positional('workload', { type: 'string', demandOption: true, describe: 'The Deployment, ReplicaSet or StatefulSet' })
        .options({
          container: { type: 'string', describe: 'The container whose environment and volumes to take, when the workload has several behind its Services' },
          name: { type: 'string', describe: 'The ingest name (default <workload>-<namespace>-ingest)' },
          ...remoteOptions,
        })
        .example('$0 ingest web --env-file web.env', "write web's environment to web.env and mount its volumes")
        .example('$0 ingest web --mount=false -- npm test', 'run a command with the environment; leave when it exits')
        .example('$0 ingest web --container worker --docker-run -- my-image', 'the same in a container, with the volumes')
        .epilogue(
          'An ingest takes no traffic: the app in the cluster keeps answering every request, and an intercept of the same workload can run beside it. ' +
            'It needs the traffic-agent in the pods, like an intercept: a workload that has none yet gets it with one restart; one that has it (an earlier intercept, ' +
            'or pre-injection) is not restarted.\nEnd it with `kubectl telepresence leave <name>`.',
        )
        .parserConfiguration({ 'populate--': true }),
    handler: async (argv) => {
      await engage(deps, argv, buildIngestSpec(argv), formatIngestText);
    },
  });
}
