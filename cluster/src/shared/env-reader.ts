import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { canonicalResources, resourcesProblem } from '@telepresence-ts/core/agent-config';
import { LOG_LEVELS, type LogLevel } from '@telepresence-ts/core/contracts';
import { formatCidr, tryParseCidr } from '@telepresence-ts/core/cidr';
import { TpError } from '@telepresence-ts/core/errors';
import { isIP } from 'node:net';

/** A process environment, or a literal one in tests. */
export type Env = Readonly<Record<string, string | undefined>>;

// RFC 1123 label: Kubernetes namespace and object names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// RFC 1123 subdomain, for host names such as `traffic-manager.tp-system`.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Reads typed values out of an environment and collects every problem, so that a program with a
 * bad environment fails at start-up with one message naming all the bad variables (rather than
 * the first one, then the next on the following restart). Empty values count as unset.
 */
export class EnvReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  #raw(name: string): string | undefined {
    const value = this.#env[name]?.trim();
    return value === '' ? undefined : value;
  }

  #problem(text: string): void {
    this.#problems.push(text);
  }

  /** A required string: a problem when unset. Returns '' then, for the caller to ignore. */
  required(name: string): string {
    const value = this.#raw(name);
    if (value === undefined) {
      this.#problem(`${name} is required but not set`);
      return '';
    }
    return value;
  }

  /** An optional string. */
  optional(name: string): string | undefined {
    return this.#raw(name);
  }

  /** A TCP port number, 1-65535. */
  port(name: string, fallback: number): number {
    const value = this.#raw(name);
    if (value === undefined) {
      return fallback;
    }
    const port = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      this.#problem(`${name}=${JSON.stringify(value)} is not a port number (1-65535)`);
      return fallback;
    }
    return port;
  }

  /** A Kubernetes namespace or object name (RFC 1123 label, at most 63 characters). */
  dnsLabel(name: string, fallback?: string): string {
    const value = fallback === undefined ? this.required(name) : (this.#raw(name) ?? fallback);
    if (value !== '' && !(DNS_LABEL.test(value) && value.length <= 63)) {
      this.#problem(`${name}=${JSON.stringify(value)} is not a valid Kubernetes name (lower-case RFC 1123 label)`);
    }
    return value;
  }

  /** A DNS host name, such as a Service's `name.namespace`. */
  hostName(name: string, fallback: string): string {
    const value = this.#raw(name) ?? fallback;
    if (!(DNS_SUBDOMAIN.test(value) && value.length <= 253) && isIP(value) === 0) {
      this.#problem(`${name}=${JSON.stringify(value)} is not a host name or IP address`);
    }
    return value;
  }

  /**
   * A container image reference (`registry/repo:tag`), or `fallback` when unset. Only what would
   * break the pod spec is refused (white space); the kubelet judges the rest when it pulls.
   */
  image(name: string, fallback: string): string {
    const value = this.#raw(name) ?? fallback;
    if (/\s/.test(value)) this.#problem(`${name}=${JSON.stringify(value)} is not an image reference`);
    return value;
  }

  /** An optional IP address (v4 or v6). */
  ip(name: string): string | undefined {
    const value = this.#raw(name);
    if (value !== undefined && isIP(value) === 0) {
      this.#problem(`${name}=${JSON.stringify(value)} is not an IP address`);
    }
    return value;
  }

  /** Optional comma-separated IP addresses (as the downward API gives `status.podIPs`); [] when unset. */
  ips(name: string): string[] {
    const value = this.#raw(name);
    if (value === undefined) return [];
    const ips = value.split(',').map((ip) => ip.trim());
    const bad = ips.filter((ip) => isIP(ip) === 0);
    if (bad.length > 0) {
      this.#problem(`${name}=${JSON.stringify(value)} is not a comma-separated list of IP addresses`);
      return [];
    }
    return ips;
  }

  /**
   * Optional comma-separated CIDRs ("10.244.0.0/16,fd00::/108"), each in its canonical form (host
   * bits cleared); [] when unset.
   */
  cidrs(name: string): string[] {
    const value = this.#raw(name);
    if (value === undefined) return [];
    const cidrs: string[] = [];
    const bad: string[] = [];
    for (const part of value.split(',').map((c) => c.trim())) {
      const cidr = tryParseCidr(part);
      if (cidr === undefined) bad.push(JSON.stringify(part));
      else cidrs.push(formatCidr(cidr));
    }
    if (bad.length > 0) {
      this.#problem(`${name}=${JSON.stringify(value)} is not a comma-separated list of CIDRs (not one: ${bad.join(', ')})`);
      return [];
    }
    return cidrs;
  }

  /** One of core's log levels. */
  logLevel(name: string, fallback: LogLevel = 'info'): LogLevel {
    const value = this.#raw(name)?.toLowerCase();
    if (value === undefined) {
      return fallback;
    }
    const level = LOG_LEVELS.find((l) => l === value);
    if (level === undefined) {
      this.#problem(`${name}=${JSON.stringify(value)} is not one of ${LOG_LEVELS.join(', ')}`);
      return fallback;
    }
    return level;
  }

  /**
   * Optional container resources as JSON (`{"requests":{"cpu":"25m"},"limits":{"memory":"128Mi"}}`),
   * checked as an agent configuration's `resources` are and in their canonical form; undefined
   * when unset or `{}`.
   */
  resources(name: string): V1ResourceRequirements | undefined {
    const value = this.#raw(name);
    if (value === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      this.#problem(`${name}=${JSON.stringify(value)} is not JSON`);
      return undefined;
    }
    const problem = resourcesProblem(parsed);
    if (problem !== undefined) {
      this.#problem(`${name}=${JSON.stringify(value)}: ${problem}`);
      return undefined;
    }
    return canonicalResources(parsed as V1ResourceRequirements);
  }

  /**
   * Returns `config` when every value read was valid; otherwise throws one `config` TpError that
   * lists each problem.
   */
  done<T>(program: string, config: T): T {
    if (this.#problems.length > 0) {
      throw new TpError('config', 'bad-environment', `invalid environment: ${this.#problems.join('; ')}`, {
        hint: `fix the environment of the ${program} container`,
      });
    }
    return config;
  }
}
