import t from 'tap';
import { iptablesRules, parsePortPairs, runIptablesInit, type CommandRunner } from '../../src/shared/iptables-init.js';

/** Records calls; `-C` (check) answers from `existing`, every other call from `fail`. */
function fakeRunner(opts: { existing?: string[]; fail?: boolean } = {}): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run: async (command, args) => {
      const line = `${command} ${args.join(' ')}`;
      calls.push(line);
      if (args.includes('-C')) return { exitCode: (opts.existing ?? []).includes(args.join(' ').replace('-C', '-A')) ? 0 : 1, stderr: '' };
      return opts.fail === true ? { exitCode: 4, stderr: 'iptables: Permission denied (you must be root).\n' } : { exitCode: 0, stderr: '' };
    },
  };
}

t.test('parsePortPairs', (t) => {
  t.strictSame(parsePortPairs('8080:9901, 8443:9902'), [
    { containerPort: 8080, agentPort: 9901 },
    { containerPort: 8443, agentPort: 9902 },
  ]);
  t.strictSame(parsePortPairs(''), []);
  for (const bad of ['8080', '8080:', 'a:1', '0:9901', '8080:70000', '1:2:3']) {
    t.throws(() => parsePortPairs(bad), { category: 'config', code: 'bad-environment' }, bad);
  }
  t.end();
});

t.test('iptablesRules: one PREROUTING REDIRECT per pair', (t) => {
  t.strictSame(iptablesRules([{ containerPort: 8080, agentPort: 9901 }]), [
    ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'REDIRECT', '--to-ports', '9901'],
  ]);
  t.strictSame(iptablesRules([]), []);
  t.end();
});

t.test('runIptablesInit adds each missing rule', async (t) => {
  const runner = fakeRunner();
  const added = await runIptablesInit(runner, { TP_AGENT_INIT_PORTS: '8080:9901,8443:9902', TP_POD_IP: '10.0.0.5' });
  t.equal(added.length, 2);
  t.strictSame(runner.calls, [
    'iptables -t nat -C PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 9901',
    'iptables -t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 9901',
    'iptables -t nat -C PREROUTING -p tcp --dport 8443 -j REDIRECT --to-ports 9902',
    'iptables -t nat -A PREROUTING -p tcp --dport 8443 -j REDIRECT --to-ports 9902',
  ]);
});

t.test('runIptablesInit skips rules already present (a restarted init container)', async (t) => {
  const runner = fakeRunner({ existing: ['-t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 9901'] });
  t.strictSame(await runIptablesInit(runner, { TP_AGENT_INIT_PORTS: '8080:9901' }), []);
  t.equal(runner.calls.length, 1);
});

t.test('runIptablesInit uses ip6tables for an IPv6 pod', async (t) => {
  const runner = fakeRunner();
  await runIptablesInit(runner, { TP_AGENT_INIT_PORTS: '8080:9901', TP_POD_IP: 'fd00::5' });
  t.match(runner.calls[0], /^ip6tables /);
});

t.test('runIptablesInit fails with a cluster error when iptables fails', async (t) => {
  await t.rejects(runIptablesInit(fakeRunner({ fail: true }), { TP_AGENT_INIT_PORTS: '8080:9901' }), {
    category: 'cluster',
    code: 'iptables-failed',
    message: /Permission denied/,
  });
});
