import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import { fakeEnv } from './fixtures/fake-deps.js';
import { run } from '../src/cli.js';
import { BufferIo } from './fixtures/buffer-io.js';

/** Each with the help its hint points to: the command's own when one was named. */
const usageErrors: ReadonlyArray<{ name: string; args: string[]; message: RegExp; help: string }> = [
  { name: 'no command', args: [], message: /no command given/, help: 'kubectl telepresence --help' },
  { name: 'unknown command', args: ['frobnicate'], message: /Unknown argument: frobnicate/, help: 'kubectl telepresence --help' },
  { name: 'unknown option', args: ['version', '--frob'], message: /Unknown argument/, help: 'kubectl telepresence version --help' },
  { name: 'bad --output', args: ['version', '--output', 'yaml'], message: /Invalid values/, help: 'kubectl telepresence version --help' },
  { name: 'an option without its value', args: ['install', '--toleration'], message: /Not enough arguments following: toleration/, help: 'kubectl telepresence install --help' },
  { name: 'intercept without --port', args: ['-n', 'shop', 'intercept', 'web'], message: /Missing required argument: port/, help: 'kubectl telepresence intercept --help' },
];

for (const c of usageErrors) {
  t.test(`usage error: ${c.name}`, async (t) => {
    const io = new BufferIo();
    const code = await run(c.args, { ...fakeEnv({ running: false }).deps, io });
    t.equal(code, 2, 'user errors exit with 2');
    t.equal(io.stdout, '', 'nothing on stdout');
    const lines = io.stderr.trimEnd().split('\n');
    t.match(lines[0], /^telepresence: /, 'one message line');
    t.match(lines[0], c.message);
    t.equal(lines[1], `hint: run \`${c.help}\` for usage`, 'then a hint to the help that applies');
    t.equal(lines.length, 2);
  });
}

t.test('a TpError thrown by a command keeps its category and hint', async (t) => {
  const io = new BufferIo();
  io.out = () => {
    throw new TpError('cluster', 'manager-unreachable', 'cannot reach the traffic-manager', { hint: 'check the cluster' });
  };
  const code = await run(['version'], { ...fakeEnv({ running: false }).deps, io });
  t.equal(code, 4);
  t.equal(io.stderr, 'telepresence: cannot reach the traffic-manager\nhint: check the cluster\n');
});

t.test('any other error is internal and points to the logs', async (t) => {
  const io = new BufferIo();
  io.out = () => {
    throw new Error('disk full');
  };
  const code = await run(['version'], { ...fakeEnv({ running: false }).deps, io });
  t.equal(code, 5);
  t.equal(io.stderr, 'telepresence: disk full\nhint: see the logs for details\n');
});

t.test('with --output json an error is JSON on stderr, with its code', async (t) => {
  for (const flags of [['--output', 'json'], ['-o', 'json'], ['--output=json']]) {
    const io = new BufferIo();
    io.out = () => {
      throw new TpError('user', 'subnet-conflict', 'the cluster overlaps eth0', { hint: 'pass --never-proxy 10.0.0.0/8' });
    };
    const code = await run(['version', ...flags], { ...fakeEnv({ running: false }).deps, io });
    t.equal(code, 2, flags.join(' '));
    t.strictSame(JSON.parse(io.stderr), { error: { category: 'user', code: 'subnet-conflict', message: 'the cluster overlaps eth0', hint: 'pass --never-proxy 10.0.0.0/8' } });
  }
});
