// Runs real child processes (this Node binary) through the adapter.
import t from 'tap';
import { formatCommandLine, processRunner } from '../src/process-runner.js';

const node = process.execPath;

t.test('run collects stdout, stderr and the exit status, and feeds stdin', async (t) => {
  const r = await processRunner.run(node, [
    '-e',
    `let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{console.log('in:'+s);console.error('err');process.exit(3)})`,
  ], { input: 'hello' });
  t.equal(r.stdout, 'in:hello\n');
  t.equal(r.stderr, 'err\n');
  t.equal(r.exitCode, 3);
  t.equal(r.timedOut, false);
});

t.test('run kills a child that outlives its timeout', async (t) => {
  const r = await processRunner.run(node, ['-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 200 });
  t.equal(r.timedOut, true);
  t.equal(r.exitCode, null);
  t.equal(r.signal, 'SIGKILL');
});

t.test('run passes env and cwd', async (t) => {
  const r = await processRunner.run(node, ['-e', 'console.log(process.env.TP_X + " " + process.cwd())'], {
    env: { ...process.env, TP_X: 'yes' },
    cwd: '/',
  });
  t.equal(r.stdout, 'yes /\n');
});

t.test('run rejects when the command cannot be started', async (t) => {
  await t.rejects(processRunner.run('/nonexistent/tp-no-such-binary', ['a b']), {
    message: /^cannot run \/nonexistent\/tp-no-such-binary 'a b': .*ENOENT/,
  });
});

t.test('start: waitForOutput matches what the child prints, stop ends it', async (t) => {
  const p = processRunner.start(node, ['-e', `console.log('Forwarding from 127.0.0.1:4321 -> 8080'); setInterval(() => {}, 1000)`]);
  t.teardown(() => p.stop());
  const m = await p.waitForOutput(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/, 5_000);
  t.equal(m[1], '4321');
  t.equal(p.exited(), false);
  await p.stop();
  t.equal(p.exited(), true);
  t.match(p.output(), /Forwarding from/);
});

t.test('start: waitForOutput rejects with the output when the child exits first', async (t) => {
  const p = processRunner.start(node, ['-e', `console.error('error: no such service'); process.exit(1)`]);
  await t.rejects(p.waitForOutput(/Forwarding/, 5_000), { message: /exited with status 1 before printing .*error: no such service/s });
});

t.test('start: waitForOutput rejects after its timeout', async (t) => {
  const p = processRunner.start(node, ['-e', `console.log('nothing useful'); setInterval(() => {}, 1000)`]);
  t.teardown(() => p.stop());
  await p.waitForOutput(/nothing useful/, 5_000);
  await t.rejects(p.waitForOutput(/Forwarding/, 300), { message: /did not print \/Forwarding\/ within 300 ms; output:\nnothing useful/ });
});

t.test('start: stop escalates to SIGKILL for a child that ignores SIGTERM', async (t) => {
  const p = processRunner.start(node, ['-e', `process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)`]);
  await p.waitForOutput(/ready/, 5_000);
  await p.stop();
  t.equal(p.exited(), true);
});

const quoting: Array<[string[], string]> = [
  [['get', 'pods'], 'kubectl get pods'],
  [['-l', 'app=echo'], 'kubectl -l app=echo'],
  [['-e', 'console.log(1)'], `kubectl -e 'console.log(1)'`],
  [["it's"], `kubectl 'it'\\''s'`],
];
for (const [args, want] of quoting) {
  t.test(`formatCommandLine ${want}`, async (t) => {
    t.equal(formatCommandLine('kubectl', args), want);
  });
}
