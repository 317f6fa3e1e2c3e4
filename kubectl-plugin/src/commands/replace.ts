import { LOCAL_HOST, TpError, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import type { GlobalOptions } from '../global-options.js';
import { defineCommand, type AnyCommand } from './define.js';
import { engage } from './intercept.js';
import { dispositionName, replacePortsText } from './list.js';
import { remoteOptions, type RemoteArgs } from '../launch.js';

interface ReplaceArgs extends GlobalOptions, RemoteArgs {
  workload: string;
  container: string | undefined;
  name: string | undefined;
  /** yargs gives a string for one `--port`, an array for several. */
  port?: string | string[] | undefined;
}

const PORT_HINT =
  'use --port <local port>:<container port> (or --port <port> for the same number), e.g. --port 18080:8080; repeat it for each port to move, a port not named keeps its number';

/**
 * Parses the `--port` flags of a replace: `<local>:<container port>` or `<port>` (the same number
 * on both sides), container ports by number (a replace takes every port of the container, so
 * a Service's port name would say nothing more). Refuses a container port given twice and two
 * container ports sent to one local port.
 */
export function parseReplacePortFlags(values: string | readonly string[] | undefined): InterceptSpec['ports'] {
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  const ports: InterceptSpec['ports'] = [];
  for (const flag of list) {
    const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(flag);
    const localPort = Number(m?.[1]);
    const containerPort = m?.[2] === undefined ? localPort : Number(m[2]);
    let problem: string | undefined;
    if (m === null) problem = /^\d+:[A-Za-z]/.test(flag) ? 'the container port must be a number' : 'it is not <local port>:<container port>';
    else if (localPort < 1 || localPort > 65535 || containerPort < 1 || containerPort > 65535) problem = 'a port is outside 1-65535';
    else if (ports.some((p) => p.containerPort === containerPort)) problem = `container port ${containerPort} is already mapped`;
    else if (ports.some((p) => p.localPort === localPort)) problem = `local port ${localPort} already receives container port ${ports.find((p) => p.localPort === localPort)?.containerPort ?? ''}`;
    if (problem !== undefined) throw new TpError('user', 'bad-port', `invalid --port "${flag}": ${problem}`, { hint: PORT_HINT });
    ports.push({ containerPort, localPort });
  }
  return ports;
}

/**
 * The spec of a replace: a workload's container and where its ports go. Every flag is checked
 * here, before the daemon is asked anything, so that a malformed one changes nothing in the cluster.
 */
export function buildReplaceSpec(argv: Pick<ReplaceArgs, 'workload' | 'container' | 'name' | 'namespace' | 'port'>): InterceptSpec {
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
    mode: 'replace',
    ports: parseReplacePortFlags(argv.port),
  };
}

export function formatReplaceText(ii: InterceptInfo): string {
  const container = ii.target?.containerName ?? ii.spec?.containerName ?? '';
  return (
    [
      `Using ${ii.spec?.workloadKind !== undefined && ii.spec.workloadKind !== '' ? ii.spec.workloadKind : 'workload'} ${ii.spec?.workloadName ?? ''}`,
      `   Replace name   : ${ii.spec?.name ?? ''}`,
      `   State          : ${dispositionName(ii.disposition)}${ii.message !== '' ? ` (${ii.message})` : ''}`,
      `   Container      : ${container} (not running in the cluster while the replace lasts)`,
      `   Ports          : ${replacePortsText(ii)}`,
      `   Replicas       : every replica runs without ${container}; all their connections to its ports come here`,
    ].join('\n') + '\n'
  );
}

/** `replace <workload>`: the container stops in the cluster, and all its ports come to the workstation. */
export function replaceCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<ReplaceArgs>({
    command: 'replace <workload>',
    describe: "Stop a workload's container in the cluster and send all of its ports to the workstation",
    builder: (y) =>
      y
        .positional('workload', { type: 'string', demandOption: true, describe: 'The Deployment, ReplicaSet or StatefulSet' })
        .options({
          container: { type: 'string', describe: 'The container to replace, when the workload has several behind its Services' },
          port: {
            alias: 'p',
            type: 'string',
            describe: '<local port>:<container port>: where one container port goes on the workstation (repeatable); a port not named keeps its number',
          },
          name: { type: 'string', describe: 'The replace name (default <workload>-<namespace>-replace)' },
          ...remoteOptions,
        })
        .example('$0 replace worker', "worker's container stops in the cluster; each of its ports comes to the same port here")
        .example('$0 replace web --port 18080:8080', 'container port 8080 to localhost:18080, the others to their own numbers')
        .example('$0 replace worker --container consumer -- npm start', 'run your consumer with the container’s environment; leave when it exits')
        .example('$0 replace worker --docker-run -- my-image', 'the same in a container, with the volumes')
        .epilogue(
          'A replace takes the whole container: its pods are made again without it (its probes go with it), so nothing of it runs in the cluster, ' +
            'no queue consumer, no scheduled job, no listener. Every replica of the workload loses the container while the replace lasts, and all of ' +
            "their connections to the ports its Services lead to come to this workstation. Your process gets the container's environment and volumes, " +
            'as with intercept.\n' +
            'Another developer cannot intercept or replace the container meanwhile (an ingest or a wiretap can share it), and you cannot replace a ' +
            'container someone intercepts. The pods restart when the replace begins and again when it ends: `kubectl telepresence leave <name>` ' +
            '(or your disconnecting) brings the container back in every replica.',
        )
        .parserConfiguration({ 'populate--': true }),
    handler: async (argv) => {
      const spec = buildReplaceSpec(argv);
      await engage(deps, argv, spec, formatReplaceText, async (launched) => {
        if (launched) return;
        // The daemon knows every port once the workload is prepared; those named are enough to warn of.
        for (const { localPort } of spec.ports) {
          if (await deps.localPortRefuses(localPort)) {
            deps.io.err(`note: nothing listens on ${LOCAL_HOST}:${localPort} yet; connections to it are refused until your process does\n`);
          }
        }
      });
    },
  });
}
