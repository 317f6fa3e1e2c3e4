import t from 'tap';
import yargs from 'yargs';
import { TpError, formatTpError, toTpError } from '@telepresence-ts/core';
import type { DoctorOptions, DoctorReport, Finding } from '@telepresence-ts/core/doctor';
import { fakeEnv } from '../fixtures/fake-deps.js';
import { buildParser } from '../../src/cli.js';
import { DOCTOR_FAILED_EXIT, doctorCommand, formatDoctorText, type Diagnose } from '../../src/commands/doctor.js';
import { globalOptions } from '../../src/global-options.js';
import { ExitStatus } from '../../src/launch.js';

const SCOPE = { context: 'kind-tp', server: 'https://127.0.0.1:6443', namespace: 'shop', managerNamespace: 'tp-system' };

function finding(check: string, group: Finding['group'], status: Finding['status'], message: string, fix = ''): Finding {
  return { check, group, status, message, fix };
}

const HEALTHY: DoctorReport = {
  scope: SCOPE,
  findings: [
    finding('traffic-manager', 'cluster', 'ok', 'v1.2.3, 1 of 1 pods ready'),
    finding('pod-security', 'cluster', 'warn', 'namespace shop: its Pod Security level restricted refuses the init container', 'keep targetPorts named'),
    finding('rbac-connect', 'permissions', 'ok', 'you have the rights for connect'),
    finding('volumes', 'workstation', 'warn', 'sshfs is not on PATH', 'sudo apt-get install sshfs'),
  ],
};

const BROKEN: DoctorReport = {
  scope: SCOPE,
  findings: [
    finding('agent-injector', 'cluster', 'fail', 'deployment/agent-injector is scaled to 0 replicas', 'kubectl --context kind-tp -n tp-system scale deployment/agent-injector --replicas=1'),
    finding('webhook', 'cluster', 'ok', 'registered'),
    finding('subnets', 'workstation', 'fail', "the cluster's pod subnet 10.244.0.0/24 overlaps this workstation's route 10.244.0.0/24 (dev cni0)", 'pass --never-proxy 10.244.0.0/24'),
  ],
};

/** Runs the verb with a fake diagnosis, as cli.ts would: the exit code, stdout, and a thrown error rendered. */
async function runVerb(args: string[], report: DoctorReport | Error) {
  const env = fakeEnv();
  const calls: Array<{ flags: unknown; options: DoctorOptions }> = [];
  const diagnose: Diagnose = async (flags, options) => {
    calls.push({ flags, options });
    if (report instanceof Error) throw report;
    return report;
  };
  let code = 0;
  let error: string | undefined;
  try {
    await yargs(args)
      .options(globalOptions)
      .command(doctorCommand(env.deps, diagnose))
      .strict()
      .exitProcess(false)
      .fail((msg: string | undefined, err: Error | undefined) => {
        throw err ?? new Error(msg);
      })
      .parseAsync();
  } catch (err: unknown) {
    if (err instanceof ExitStatus) code = err.code;
    else error = formatTpError(toTpError(err));
  }
  return { code, stdout: env.io.stdout, error, calls };
}

t.test('text: grouped findings, one line each with its mark, the fix under warnings and failures, then a summary', async (t) => {
  const res = await runVerb(['doctor'], HEALTHY);
  t.equal(res.code, 0, 'warnings alone exit 0');
  t.equal(
    res.stdout,
    [
      'Cluster: context kind-tp (https://127.0.0.1:6443), namespace shop, traffic-manager in tp-system',
      '  [ok]   traffic-manager: v1.2.3, 1 of 1 pods ready',
      '  [warn] pod-security: namespace shop: its Pod Security level restricted refuses the init container',
      '         fix: keep targetPorts named',
      '',
      'Permissions',
      '  [ok]   rbac-connect: you have the rights for connect',
      '',
      'Workstation',
      '  [warn] volumes: sshfs is not on PATH',
      '         fix: sudo apt-get install sshfs',
      '',
      '4 checks: 2 ok, 2 warnings, 0 failed',
      '',
    ].join('\n'),
  );
});

t.test('a failed check exits non-zero, after printing every finding', async (t) => {
  const res = await runVerb(['doctor'], BROKEN);
  t.equal(res.code, DOCTOR_FAILED_EXIT);
  t.not(DOCTOR_FAILED_EXIT, 0);
  t.match(res.stdout, '  [FAIL] agent-injector: deployment/agent-injector is scaled to 0 replicas\n         fix: kubectl --context kind-tp -n tp-system scale deployment/agent-injector --replicas=1\n');
  t.match(res.stdout, '  [FAIL] subnets: ');
  t.match(res.stdout, /\n3 checks: 1 ok, 0 warnings, 2 failed\n$/);
});

t.test('-o json: an array of {check, status, message, fix}; the exit code still says whether one failed', async (t) => {
  const res = await runVerb(['doctor', '-o', 'json'], BROKEN);
  t.equal(res.code, DOCTOR_FAILED_EXIT);
  const out = JSON.parse(res.stdout) as unknown[];
  t.strictSame(
    out,
    BROKEN.findings.map((f) => ({ check: f.check, status: f.status, message: f.message, fix: f.fix })),
  );
  t.equal((await runVerb(['doctor', '-o', 'json'], HEALTHY)).code, 0);
});

t.test('the flags reach the checks: namespaces, kube flags, outbound options and the client version', async (t) => {
  const res = await runVerb(
    ['doctor', '--manager-namespace', 'tp-x', '-n', 'shop', '--context', 'other', '--never-proxy', '10.96.0.0/12', '--also-proxy', '192.168.5.0/24', '--outbound=false'],
    HEALTHY,
  );
  t.strictSame(res.calls[0]?.flags, { kubeconfig: undefined, context: 'other', namespace: 'shop', kubeconfigEnv: 'rel/a.yaml:/abs/b.yaml' });
  t.strictSame(res.calls[0]?.options, {
    managerNamespace: 'tp-x',
    namespace: 'shop',
    clientVersion: '1.2.3',
    outbound: { disabled: true, alsoProxy: ['192.168.5.0/24'], neverProxy: ['10.96.0.0/12'] },
  });
  const defaults = await runVerb(['doctor'], HEALTHY);
  t.match(defaults.calls[0]?.options, { managerNamespace: 'tp-system', namespace: undefined, outbound: { disabled: false, alsoProxy: [], neverProxy: [] } });
});

t.test('a bad command line is an error, not a finding', async (t) => {
  const res = await runVerb(['doctor', '--never-proxy', 'x'], new TpError('user', 'bad-subnet', '--never-proxy "x" is not a subnet', { hint: 'give a CIDR such as 10.0.0.0/16 or fd00::/108' }));
  t.equal(res.error, 'telepresence: --never-proxy "x" is not a subnet\nhint: give a CIDR such as 10.0.0.0/16 or fd00::/108');
  t.equal(res.stdout, '');
});

t.test('a cluster that could not be checked has a plain heading', (t) => {
  const text = formatDoctorText({ scope: undefined, findings: [finding('cluster', 'cluster', 'fail', 'cannot check the cluster: ECONNREFUSED', 'check that `kubectl get namespaces` works')] });
  t.match(text, /^Cluster\n {2}\[FAIL\] cluster: cannot check the cluster: ECONNREFUSED\n/);
  t.end();
});

t.test('--help teaches what it checks, how it reports, and its exit code', async (t) => {
  const help = await buildParser(['doctor', '--help'], fakeEnv().deps).getHelp();
  for (const what of [
    /traffic-manager and agent-injector .* major\.minor/,
    /server-side dry-run pod/,
    /CA bundle against the certificate the injector serves/,
    /Pod Security level/,
    /your RBAC for what connect, list, intercept/,
    /actual port-forward to the traffic-manager's pod/,
    /sshfs and \/dev\/fuse for volumes \(a warning only\)/,
    /\/dev\/net\/tun, root or a running network daemon, the cluster's subnets against this workstation's routes/,
    /resolv\.conf/,
    new RegExp(`Exits ${DOCTOR_FAILED_EXIT} when a check fails`),
    /--manager-namespace/,
    /--never-proxy/,
    /-o json/,
  ]) {
    t.match(help, what);
  }
});
