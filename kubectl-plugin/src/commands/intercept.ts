import { TpError, type InterceptInfo, type InterceptSpec } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print, progressTo } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';
import { dispositionName, interceptJson } from './list.js';

interface InterceptArgs extends GlobalOptions {
  workload: string;
  port: string;
  service: string | undefined;
  container: string | undefined;
  name: string | undefined;
}

const PORT_HINT = 'use --port <local port>[:<service port name or number>], e.g. --port 8080 or --port 8080:http';

/** Parses `--port local[:servicePort]`. */
export function parsePortFlag(value: string): { localPort: number; servicePort: string } {
  const m = /^(\d{1,5})(?::([A-Za-z0-9][-A-Za-z0-9]*))?$/.exec(value);
  const localPort = m === null ? NaN : Number(m[1]);
  if (m === null || localPort < 1 || localPort > 65535) {
    throw new TpError('user', 'bad-port', `invalid --port "${value}"`, { hint: PORT_HINT });
  }
  return { localPort, servicePort: m[2] ?? '' };
}

export function buildSpec(argv: InterceptArgs): InterceptSpec {
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
  };
}

export function formatInterceptText(ii: InterceptInfo): string {
  const t = ii.target;
  const servicePort = t === undefined ? '' : `${t.serviceName}:${t.servicePortName !== '' ? `${t.servicePortName} (${t.servicePort})` : t.servicePort}`;
  const lines = [
    `Using ${ii.spec?.workloadKind !== undefined && ii.spec.workloadKind !== '' ? ii.spec.workloadKind : 'workload'} ${ii.spec?.workloadName ?? ''}`,
    `   Intercept name : ${ii.spec?.name ?? ''}`,
    `   State          : ${dispositionName(ii.disposition)}${ii.message !== '' ? ` (${ii.message})` : ''}`,
    `   Destination    : 127.0.0.1:${ii.spec?.localPort ?? 0}`,
  ];
  // The target is resolved by the manager; an older or partial answer may lack it.
  if (t !== undefined) {
    lines.push(`   Service port   : ${servicePort}`, `   Container      : ${t.containerName}:${t.containerPort}`);
  }
  return lines.join('\n') + '\n';
}

/** `intercept <workload> --port local[:svcport]`: routes the service port's traffic to a local port. */
export function interceptCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<InterceptArgs>({
    command: 'intercept <workload>',
    describe: "Send a workload's service traffic to a local port",
    builder: (y) =>
      y
        .positional('workload', { type: 'string', demandOption: true, describe: 'The Deployment, ReplicaSet or StatefulSet to intercept' })
        .options({
          port: { alias: 'p', type: 'string', demandOption: true, describe: 'local[:service port name or number]' },
          service: { type: 'string', describe: 'The Service to intercept, when several select the workload' },
          container: { type: 'string', describe: 'The container that serves the port, when several do' },
          name: { type: 'string', describe: 'The intercept name (default <workload>-<namespace>)' },
        }),
    handler: async (argv) => {
      const spec = buildSpec(argv);
      const { daemon } = await connectedDaemon(deps, argv);
      try {
        const info = await daemon.intercept(spec, progressTo(deps.io));
        print(deps.io, argv.output, interceptJson(info), () => formatInterceptText(info));
      } finally {
        daemon.close();
      }
    },
  });
}
