import t from 'tap';
import yargs from 'yargs';
import { formatTpError, toTpError } from '@telepresence-ts/core';
import { fakeEnv } from '../fixtures/fake-deps.js';
import { buildParser } from '../../src/cli.js';
import { networkDaemonCommand, type NetworkDaemonHost } from '../../src/commands/network-daemon.js';
import { globalOptions } from '../../src/global-options.js';

/** A host that records what the verb asked of it. */
function fakeHost(over: Partial<NetworkDaemonHost> & { running?: boolean } = {}) {
  const calls: string[] = [];
  const state = { running: over.running ?? false };
  const host: NetworkDaemonHost = {
    euid: 0,
    defaultOwner: 1000,
    socketPath: '/run/telepresence-ts/network.sock',
    logPath: '/root/.cache/telepresence-ts/network-daemon.log',
    clock: { now: () => 0, sleep: async () => undefined },
    ownerGid: async (uid) => uid + 1,
    serve: async (owner) => void calls.push(`serve ${owner.uid}:${owner.gid}`),
    launch: (uid) => {
      calls.push(`launch ${uid}`);
      state.running = true;
    },
    ping: async () => state.running,
    quit: async () => {
      calls.push('quit');
      state.running = false;
    },
    ...over,
  };
  return { host, calls, state };
}

/** Runs the verb, bound to a fake host, as cli.ts would: stdout, stderr rendering, and no throw. */
async function runVerb(args: string[], host: NetworkDaemonHost) {
  const env = fakeEnv();
  let error: string | undefined;
  try {
    await yargs(args)
      .options(globalOptions)
      .command(networkDaemonCommand(env.deps, () => host))
      .strict()
      .exitProcess(false)
      .fail((msg: string | undefined, err: Error | undefined) => {
        throw err ?? new Error(msg);
      })
      .parseAsync();
  } catch (err: unknown) {
    error = formatTpError(toTpError(err));
  }
  return { stdout: env.io.stdout, error };
}

t.test('without --foreground it starts itself in the background for the sudo caller and prints the socket', async (t) => {
  const { host, calls } = fakeHost();
  const res = await runVerb(['network-daemon'], host);
  t.strictSame(calls, ['launch 1000']);
  t.equal(res.stdout, 'Network daemon for uid 1000 listening on /run/telepresence-ts/network.sock\n');
  t.equal(res.error, undefined);
});

t.test('a daemon that already answers is reported, not started twice; -o json', async (t) => {
  const { host, calls } = fakeHost({ running: true });
  const res = await runVerb(['network-daemon', '--owner', '1001', '-o', 'json'], host);
  t.strictSame(calls, []);
  t.strictSame(JSON.parse(res.stdout), { socket: '/run/telepresence-ts/network.sock', owner: 1001, started: false });
});

t.test('--foreground serves in this process as the given owner and their group', async (t) => {
  const { host, calls } = fakeHost();
  await runVerb(['network-daemon', '--foreground', '--owner', '65534'], host);
  t.strictSame(calls, ['serve 65534:65535']);
});

t.test('without root it refuses in one line that says to use sudo', async (t) => {
  const { host, calls } = fakeHost({ euid: 1000 });
  const res = await runVerb(['network-daemon'], host);
  t.equal(res.error, 'telepresence: network-daemon must run as root: run it with sudo (sudo kubectl telepresence network-daemon)');
  t.strictSame(calls, []);
});

t.test('a daemon that never answers fails with the log to read', async (t) => {
  let now = 0;
  const { host } = fakeHost({ clock: { now: () => now, sleep: async (ms) => void (now += ms) }, launch: () => undefined });
  const res = await runVerb(['network-daemon'], host);
  t.match(res.error, /did not start listening on \/run\/telepresence-ts\/network.sock\nhint: see \/root\/.cache\/telepresence-ts\/network-daemon.log/);
});

t.test('--stop calls Quit (no root needed: the owner may open the socket)', async (t) => {
  const running = fakeHost({ running: true, euid: 1000 });
  const res = await runVerb(['network-daemon', '--stop'], running.host);
  t.strictSame(running.calls, ['quit']);
  t.equal(res.stdout, 'Network daemon stopped\n');
  const stopped = fakeHost({ running: false });
  t.equal((await runVerb(['network-daemon', '--stop'], stopped.host)).stdout, 'Network daemon was not running\n');
});

t.test('--help teaches what it is for, who needs it, and how to stop it', async (t) => {
  // yargs prints help with console.log; getHelp() returns the same text.
  const help = await buildParser(['network-daemon', '--help'], fakeEnv().deps).getHelp();
  t.match(help, /needs a TUN device, routes and a DNS redirect/);
  t.match(help, /everyone else starts it once with sudo/);
  t.match(help, /`kubectl telepresence quit` takes down/);
  t.match(help, /--stop/);
  t.match(help, /--owner/);
});
