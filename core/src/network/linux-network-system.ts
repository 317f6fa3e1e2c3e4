/**
 * The Linux adapter of `NetworkSystem`: iproute2's `ip` and `iptables`, run through the
 * ProcessRunner port. Every command can carry a prefix (`ip netns exec <ns>`), so that tests run
 * the very same command lines inside a network namespace of their own.
 */
import { TpError } from '../errors.js';
import type { ProcessRunner } from '../process/process-runner.js';
import type { Logger } from '../daemon/logger.js';
import { DNS_CHAIN, type DnsRedirect, type NetworkSystem } from './network-system.js';

/** A command of ours takes milliseconds; this only stops a wedged one from hanging bring-up. */
const COMMAND_TIMEOUT_MS = 15_000;
/**
 * iptables takes the xtables lock; kube-proxy on the same host holds it often. Wait for it (in
 * seconds) instead of failing with "Another app is currently holding the xtables lock".
 */
const XTABLES_WAIT_S = '5';

export interface LinuxNetworkSystemOptions {
  readonly runner: ProcessRunner;
  readonly log: Logger;
  /** Put before every command, e.g. `['ip', 'netns', 'exec', 'test-ns']`. */
  readonly prefix?: readonly string[];
}

interface Outcome {
  readonly ok: boolean;
  /** The program is not installed. */
  readonly missing: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

export function linuxNetworkSystem(options: LinuxNetworkSystemOptions): NetworkSystem {
  const prefix = options.prefix ?? [];
  const { runner, log } = options;

  async function exec(argv: readonly string[]): Promise<Outcome> {
    const full = [...prefix, ...argv];
    const [command = '', ...args] = full;
    const out = await runner.run(command, args, { timeoutMs: COMMAND_TIMEOUT_MS });
    const missing = out.startError?.code === 'ENOENT' || out.exitCode === 127;
    return { ok: out.exitCode === 0, missing, stdout: out.stdout, stderr: out.timedOut ? `timed out after ${COMMAND_TIMEOUT_MS} ms` : out.stderr.trim() };
  }

  /** Runs a command that must succeed; the error quotes the command and what it printed. */
  async function must(argv: readonly string[]): Promise<string> {
    const out = await exec(argv);
    if (!out.ok) {
      const why = out.missing ? `${argv[0] ?? ''} is not installed` : out.stderr !== '' ? out.stderr : 'it failed without a message';
      throw new TpError('internal', 'network-command-failed', `\`${argv.join(' ')}\` failed: ${why}`);
    }
    return out.stdout;
  }

  const iptables = (...args: string[]): string[] => ['iptables', '-w', XTABLES_WAIT_S, '-t', 'nat', ...args];

  return {
    async listDevices() {
      const text = await must(['ip', '-o', 'link', 'show']);
      // "7: tpts0: <POINTOPOINT,...> mtu 65000 ..." or "3: veth1@if2: <...>".
      return text
        .split('\n')
        .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
        .filter((name): name is string => name !== undefined);
    },

    async createTun(name, ownerUid) {
      await must(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tun', 'user', String(ownerUid)]);
    },

    async setUp(name, mtu) {
      await must(['ip', 'link', 'set', 'dev', name, 'mtu', String(mtu), 'up']);
    },

    async deleteDevice(name) {
      await must(['ip', 'link', 'del', 'dev', name]);
    },

    async addRoute(device, cidr, family) {
      await must(['ip', ...(family === 6 ? ['-6'] : []), 'route', 'add', cidr, 'dev', device]);
    },

    async addDnsRedirect(r: DnsRedirect) {
      await must(iptables('-N', DNS_CHAIN));
      await must(iptables('-A', DNS_CHAIN, '-p', 'udp', '--sport', String(r.upstreamPort), '-j', 'RETURN'));
      for (const ns of r.nameservers) {
        await must(iptables('-A', DNS_CHAIN, '-p', 'udp', '-d', ns, '--dport', '53', '-j', 'REDIRECT', '--to-ports', String(r.dnsPort)));
      }
      // The jump goes in last and first in OUTPUT: the chain is complete before any packet can
      // enter it, and it comes before kube-proxy's KUBE-SERVICES on a host that runs a cluster.
      await must(iptables('-I', 'OUTPUT', '1', '-p', 'udp', '--dport', '53', '-j', DNS_CHAIN));
    },

    async removeDnsRedirect() {
      const output = await exec(iptables('-S', 'OUTPUT'));
      if (output.missing) return false;
      if (!output.ok) throw new TpError('internal', 'network-command-failed', `\`iptables -t nat -S OUTPUT\` failed: ${output.stderr}`);
      let removed = false;
      // Every jump to our chain, whatever its match (an older version may have written another):
      // `-A OUTPUT <spec>` becomes `-D OUTPUT <spec>`. Our rules carry no quoted arguments.
      for (const line of output.stdout.split('\n')) {
        const words = line.trim().split(/\s+/);
        if (words[0] !== '-A' || words[1] !== 'OUTPUT') continue;
        const jump = words.indexOf('-j');
        if (jump < 0 || words[jump + 1] !== DNS_CHAIN) continue;
        await must(iptables('-D', ...words.slice(1)));
        removed = true;
      }
      // -S on a chain that does not exist fails: then there is nothing more to remove.
      if ((await exec(iptables('-S', DNS_CHAIN))).ok) {
        await must(iptables('-F', DNS_CHAIN));
        await must(iptables('-X', DNS_CHAIN));
        removed = true;
      }
      if (removed) log('info', `removed the DNS redirect (iptables nat chain ${DNS_CHAIN})`);
      return removed;
    },
  };
}
