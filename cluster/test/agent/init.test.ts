import t from 'tap';
import { parseAgentMode, runInit } from '../../src/agent/init.js';
import { memoryLogger } from './helpers.js';

t.test('argv picks the mode', (t) => {
  t.equal(parseAgentMode([]), 'agent', 'no argument: the sidecar');
  t.equal(parseAgentMode(['agent']), 'agent');
  t.equal(parseAgentMode(['init']), 'init');
  t.throws(() => parseAgentMode(['agent-init']), { category: 'config', code: 'bad-arguments', message: 'unknown mode "agent-init"' });
  t.end();
});

t.test('init runs the iptables rules of the environment', async (t) => {
  const ran: string[] = [];
  const runner = {
    run: async (command: string, args: readonly string[]) => {
      ran.push(`${command} ${args.join(' ')}`);
      // -C (check) fails: the rule is not there yet.
      return { exitCode: args.includes('-C') ? 1 : 0, stderr: '' };
    },
  };
  const log = memoryLogger();
  await runInit(runner, { TP_AGENT_INIT_PORTS: '8080:9901' }, log);
  t.strictSame(ran, [
    'iptables -t nat -C PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 9901',
    'iptables -t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 9901',
  ]);
  t.match(log.lines, [{ level: 'info', msg: 'iptables redirects in place', fields: { ports: '8080:9901' } }]);
});

t.test('a failing iptables fails init', async (t) => {
  const runner = { run: async () => ({ exitCode: 4, stderr: 'Permission denied (you must be root)' }) };
  await t.rejects(runInit(runner, { TP_AGENT_INIT_PORTS: '8080:9901' }, memoryLogger()), { category: 'cluster', code: 'iptables-failed' });
});
