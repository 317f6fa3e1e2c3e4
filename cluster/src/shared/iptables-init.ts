/**
 * The traffic-agent's `init` mode, run by the `tel-agent-init` init container the injector adds
 * when a Service reaches the app through a numeric target port (ADR 0002). It redirects TCP
 * entering the pod on each such container port to the agent's port:
 *
 *   iptables -t nat -A PREROUTING -p tcp --dport <containerPort> -j REDIRECT --to-ports <agentPort>
 *
 * Only PREROUTING: traffic entering the pod. The agent's own connections to the app
 * (127.0.0.1:<containerPort>) go through OUTPUT and so reach the app.
 *
 * Contract with the injector: the init container gets `ENV.agentInitPorts` (`TP_AGENT_INIT_PORTS`)
 * = comma-separated `containerPort:agentPort` pairs and `ENV.podIp` (ip6tables when it is IPv6),
 * runs as root with NET_ADMIN, and exits 0 when every rule is in place.
 */
import { ENV } from '@telepresence-ts/core/contracts';
import { TpError } from '@telepresence-ts/core/errors';
import { isIPv6 } from 'node:net';
import type { Env } from './env-reader.js';

/** One redirect: TCP for `containerPort` entering the pod goes to `agentPort`. */
export interface PortPair {
  readonly containerPort: number;
  readonly agentPort: number;
}

/** What runIptablesInit needs to run a command; the agent's main passes a child_process adapter. */
export interface CommandRunner {
  run(command: string, args: readonly string[]): Promise<{ readonly exitCode: number | null; readonly stderr: string }>;
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Parses `8080:9901,8443:9902`; throws a `config` TpError naming the bad part. */
export function parsePortPairs(text: string): PortPair[] {
  const pairs: PortPair[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^(\d+):(\d+)$/.exec(part);
    const containerPort = Number(m?.[1]);
    const agentPort = Number(m?.[2]);
    if (m === null || !isPort(containerPort) || !isPort(agentPort)) {
      throw new TpError('config', 'bad-environment', `${ENV.agentInitPorts}: "${part}" is not containerPort:agentPort`, {
        hint: 'the agent-injector writes this variable; recreate the pod or report a bug',
      });
    }
    pairs.push({ containerPort, agentPort });
  }
  return pairs;
}

/** The arguments to iptables (or ip6tables) that add the rule for each pair, in order. */
export function iptablesRules(pairs: readonly PortPair[]): string[][] {
  return pairs.map((p) => [
    '-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp',
    '--dport', String(p.containerPort),
    '-j', 'REDIRECT', '--to-ports', String(p.agentPort),
  ]);
}

/**
 * Adds the rules from the environment. Idempotent: a rule already present (`-C` succeeds, e.g.
 * when the init container is restarted in the same pod) is not added twice. Returns the rules it
 * added; throws a `cluster` TpError when iptables fails (the init container then fails, and the
 * pod does not start with traffic bypassing the agent).
 */
export async function runIptablesInit(runner: CommandRunner, env: Env): Promise<string[][]> {
  const pairs = parsePortPairs(env[ENV.agentInitPorts] ?? '');
  const podIp = env[ENV.podIp]?.trim() ?? '';
  const command = podIp !== '' && isIPv6(podIp) ? 'ip6tables' : 'iptables';
  const added: string[][] = [];
  for (const rule of iptablesRules(pairs)) {
    const check = rule.map((a) => (a === '-A' ? '-C' : a));
    if ((await runner.run(command, check)).exitCode === 0) continue;
    const r = await runner.run(command, rule);
    if (r.exitCode !== 0) {
      throw new TpError('cluster', 'iptables-failed', `${command} ${rule.join(' ')} failed (exit ${String(r.exitCode)}): ${r.stderr.trim()}`, {
        hint: 'the init container needs the NET_ADMIN capability and root; check the pod security policy of the namespace',
      });
    }
    added.push(rule);
  }
  return added;
}
