import { EXIT_CODES, type KubeFlags } from '@telepresence-ts/core';
import { FINDING_GROUPS, anyFailed, createDoctorPorts, runDoctor, tally, type DoctorOptions, type DoctorReport, type Finding, type FindingGroup } from '@telepresence-ts/core/doctor';
import { resolve } from 'node:path';
import type { CommandDeps } from '../command-deps.js';
import { managerNamespaceOption } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { ExitStatus } from '../launch.js';
import { print } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface DoctorArgs extends GlobalOptions {
  'manager-namespace': string;
  outbound: boolean;
  'also-proxy': string[];
  'never-proxy': string[];
}

/** Runs the checks for the kubectl flags given (core's runDoctor over the real ports); tests pass a fake. */
export type Diagnose = (flags: KubeFlags, options: DoctorOptions) => Promise<DoctorReport>;

/**
 * The exit status when a check failed: `config`'s, since what doctor finds is a set-up to fix
 * (warnings alone exit 0).
 */
export const DOCTOR_FAILED_EXIT = EXIT_CODES.config;

const MARKS = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]' } as const;

/** What `--output json` prints: the findings, each {check, status, message, fix}. */
export function doctorJson(findings: readonly Finding[]) {
  return findings.map((f) => ({ check: f.check, status: f.status, message: f.message, fix: f.fix }));
}

function heading(group: FindingGroup, report: DoctorReport): string {
  const s = report.scope;
  if (group === 'cluster') return s === undefined ? 'Cluster' : `Cluster: context ${s.context} (${s.server}), namespace ${s.namespace}, traffic-manager in ${s.managerNamespace}`;
  if (group === 'permissions') return 'Permissions';
  return 'Workstation';
}

/** One line per finding with its mark, the fix under each warning or failure, grouped, then a summary. */
export function formatDoctorText(report: DoctorReport): string {
  const lines: string[] = [];
  for (const group of FINDING_GROUPS) {
    const found = report.findings.filter((f) => f.group === group);
    if (found.length === 0) continue;
    if (lines.length > 0) lines.push('');
    lines.push(heading(group, report));
    for (const f of found) {
      lines.push(`  ${MARKS[f.status]} ${f.check}: ${f.message}`);
      if (f.status !== 'ok' && f.fix !== '') lines.push(`         fix: ${f.fix}`);
    }
  }
  const n = tally(report.findings);
  lines.push('', `${report.findings.length} checks: ${n.ok} ok, ${n.warn} ${n.warn === 1 ? 'warning' : 'warnings'}, ${n.fail} failed`);
  return `${lines.join('\n')}\n`;
}

/** `doctor`: a pre-flight check of the cluster, the user's rights and this workstation, each finding with its fix. */
export function doctorCommand(
  deps: CommandDeps,
  // The CLI bundle's path, for the network-daemon command a finding may name (as connect's hint does).
  diagnose: Diagnose = async (flags, options) => runDoctor(await createDoctorPorts(flags, deps.processEnv, resolve(process.argv[1] ?? '')), options),
): AnyCommand {
  return defineCommand<DoctorArgs>({
    command: 'doctor',
    describe: 'Check the cluster, your rights and this workstation for what telepresence needs, and say how to fix what is off',
    builder: (y) =>
      y
        .options({
          ...managerNamespaceOption,
          outbound: { type: 'boolean', default: true, describe: 'Check outbound access too, as connect sets it up (--outbound=false: intercepts only)' },
          'also-proxy': { type: 'string', array: true, default: [] as string[], describe: 'As connect: a subnet to route as well (CIDR; repeatable)' },
          'never-proxy': { type: 'string', array: true, default: [] as string[], describe: 'As connect: a subnet never to route (CIDR; repeatable)' },
        })
        .example('$0 doctor -n shop', 'check everything for working in namespace shop')
        .example('$0 doctor --never-proxy 10.96.0.0/16', 'check that this --never-proxy resolves a subnet conflict before passing it to connect')
        .example('$0 doctor -o json', 'the findings as a JSON array of {check, status, message, fix}')
        .epilogue(
          'Checks, each reported as ok, warn or fail with the fix (a command to type where there is one):\n' +
            '  cluster: the traffic-manager and agent-injector in the manager namespace are installed, ready and of this client\'s major.minor version; ' +
            'the API server can call the injector webhook (a server-side dry-run pod of a workload that has an agent configuration must come back with the traffic-agent; ' +
            'in a namespace where none has one, the webhook registration, its CA bundle against the certificate the injector serves, and the injector Service\'s ready endpoints); ' +
            "the namespace's Pod Security level (the agent's init container needs root and NET_ADMIN for Services with a numeric targetPort).\n" +
            "  permissions: your RBAC for what connect, list, intercept (direct tunnels and volumes) and install do; an actual port-forward to the traffic-manager's pod, as connect makes.\n" +
            "  workstation: sshfs and /dev/fuse for volumes (a warning only); for outbound access, /dev/net/tun, root or a running network daemon, the cluster's subnets against this workstation's routes, and whether /etc/resolv.conf is a DNS set-up the redirect handles.\n" +
            `Nothing in the cluster is changed (the traffic-manager sees a session of a moment). Exits ${DOCTOR_FAILED_EXIT} when a check fails, 0 when all are ok or warnings.`,
        ),
    handler: async (argv) => {
      const report = await diagnose(
        { kubeconfig: argv.kubeconfig, context: argv.context, namespace: argv.namespace, kubeconfigEnv: deps.env.kubeconfig },
        {
          managerNamespace: argv['manager-namespace'],
          namespace: argv.namespace,
          clientVersion: deps.version,
          outbound: { disabled: !argv.outbound, alsoProxy: argv['also-proxy'], neverProxy: argv['never-proxy'] },
        },
      );
      print(deps.io, argv.output, doctorJson(report.findings), () => formatDoctorText(report));
      if (anyFailed(report.findings)) throw new ExitStatus(DOCTOR_FAILED_EXIT);
    },
  });
}
