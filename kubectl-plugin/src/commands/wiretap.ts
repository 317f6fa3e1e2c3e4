import { LOCAL_HOST, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import type { GlobalOptions } from '../global-options.js';
import { defineCommand, type AnyCommand } from './define.js';
import { engage, parsePortFlag } from './intercept.js';
import { dispositionName } from './list.js';
import { remoteOptions, type RemoteArgs } from '../launch.js';

interface WiretapArgs extends GlobalOptions, RemoteArgs {
  workload: string;
  port: string;
  service: string | undefined;
  container: string | undefined;
  name: string | undefined;
}

/** The spec of a wiretap: one service port, like an intercept, whose traffic is copied, not taken. */
export function buildWiretapSpec(argv: Pick<WiretapArgs, 'workload' | 'port' | 'service' | 'container' | 'name' | 'namespace'>): InterceptSpec {
  const { localPort, servicePort } = parsePortFlag(argv.port);
  return {
    name: argv.name ?? '',
    namespace: argv.namespace ?? '',
    workloadName: argv.workload,
    workloadKind: '',
    serviceName: argv.service ?? '',
    servicePort,
    containerName: argv.container ?? '',
    localPort,
    headers: [],
    httpPathPrefix: '',
    httpMethods: [],
    mode: 'wiretap',
    ports: [],
  };
}

export function formatWiretapText(ii: InterceptInfo): string {
  const t = ii.target;
  const lines = [
    `Using ${ii.spec?.workloadKind !== undefined && ii.spec.workloadKind !== '' ? ii.spec.workloadKind : 'workload'} ${ii.spec?.workloadName ?? ''}`,
    `   Wiretap name   : ${ii.spec?.name ?? ''}`,
    `   State          : ${dispositionName(ii.disposition)}${ii.message !== '' ? ` (${ii.message})` : ''}`,
    `   Copies to      : ${LOCAL_HOST}:${ii.spec?.localPort ?? 0} (its answers are discarded; the caller is answered as before)`,
  ];
  if (t !== undefined) {
    lines.push(`   Service port   : ${t.serviceName}:${t.servicePortName !== '' ? `${t.servicePortName} (${t.servicePort})` : t.servicePort}`);
    lines.push(`   Container      : ${t.containerName}:${t.containerPort}`);
  }
  return lines.join('\n') + '\n';
}

/** `wiretap <workload> --port local[:svcport]`: a copy of a service port's traffic on a local port. */
export function wiretapCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<WiretapArgs>({
    command: 'wiretap <workload>',
    describe: "Copy a workload's service traffic to a local port, while the app keeps answering it",
    builder: (y) =>
      y
        .positional('workload', { type: 'string', demandOption: true, describe: 'The Deployment, ReplicaSet or StatefulSet' })
        .options({
          port: { alias: 'p', type: 'string', demandOption: true, describe: 'local[:service port name or number]: where the copy goes, and of which port' },
          service: { type: 'string', describe: 'The Service whose port to copy, when several select the workload' },
          container: { type: 'string', describe: 'The container that serves the port, when several do' },
          name: { type: 'string', describe: 'The wiretap name (default <workload>-<namespace>-wiretap; pass one to run several)' },
          ...remoteOptions,
        })
        .example('$0 wiretap web --port 8080', "a copy of every connection to web's service port on localhost:8080")
        .example('$0 wiretap web --port 9090:http --name web-copy-2', 'a second wiretap of the same port, elsewhere')
        .example('$0 wiretap web --port 8080 -- node replay.js', 'run a process with the environment that receives the copy; leave when it exits')
        .epilogue(
          'Every connection to the port (so every HTTP request on it) is copied to the local port as it arrives; whoever answered it before ' +
            '(the app, or an intercept) still does, and what your process answers is discarded. Any number of wiretaps and one intercept can share a port.\n' +
            'Copies reach the local port within about 10 ms of the request. A slow or stopped local process never slows the caller: at most 1 MiB of copies ' +
            'waits for it, past that the rest of a connection is not copied, and `kubectl telepresence watch <name>` shows how many bytes were dropped.\n' +
            'Like an intercept, the first engagement of a workload restarts its pods with the traffic-agent. End it with `kubectl telepresence leave <name>`.',
        )
        .parserConfiguration({ 'populate--': true }),
    handler: async (argv) => {
      const spec = buildWiretapSpec(argv);
      await engage(deps, argv, spec, formatWiretapText, async (launched) => {
        if (!launched && (await deps.localPortRefuses(spec.localPort))) {
          deps.io.err(`note: nothing listens on ${LOCAL_HOST}:${spec.localPort} yet; copies are dropped until your process does (the app is not affected)\n`);
        }
      });
    },
  });
}
