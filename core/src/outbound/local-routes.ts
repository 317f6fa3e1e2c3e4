/**
 * The workstation's own routes, read from /proc/net/route and /proc/net/ipv6_route (readable by
 * any user, so the unprivileged user daemon can check for conflicting subnets before it asks the
 * network daemon for anything). Linux only; elsewhere the files are missing and the list is empty.
 */
import { readFile } from 'node:fs/promises';
import { formatCidr, type Cidr } from './cidr.js';
import type { LocalRoute } from './outbound.js';

/** Parses /proc/net/route: hex, little-endian addresses and masks. */
export function parseIpv4Routes(text: string): LocalRoute[] {
  const out: LocalRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [device, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (device === undefined || dest === undefined || mask === undefined || !/^[0-9A-Fa-f]{8}$/.test(dest) || !/^[0-9A-Fa-f]{8}$/.test(mask)) continue;
    const le = (hex: string): bigint => BigInt(`0x${hex.match(/../g)?.reverse().join('') ?? '0'}`);
    const maskValue = le(mask);
    const bits = maskValue.toString(2).replace(/0+$/, '').length;
    out.push({ device, cidr: formatCidr({ family: 4, base: le(dest), bits: maskValue === 0n ? 0 : bits }) });
  }
  return out;
}

/** Parses /proc/net/ipv6_route: destination (32 hex digits), prefix length (hex), ..., device last. */
export function parseIpv6Routes(text: string): LocalRoute[] {
  const out: LocalRoute[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const [dest, prefix] = fields;
    const device = fields[9];
    if (dest === undefined || prefix === undefined || device === undefined || !/^[0-9a-fA-F]{32}$/.test(dest)) continue;
    // Loopback's own entries (::1, the local table's addresses) are not networks a subnet can clash with.
    if (device === 'lo') continue;
    const cidr: Cidr = { family: 6, base: BigInt(`0x${dest}`), bits: parseInt(prefix, 16) };
    out.push({ device, cidr: formatCidr(cidr) });
  }
  return out;
}

/** Both tables; a file that cannot be read counts as no routes. */
export async function readLocalRoutes(): Promise<LocalRoute[]> {
  const read = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');
  const [v4, v6] = await Promise.all([read('/proc/net/route'), read('/proc/net/ipv6_route')]);
  return [...parseIpv4Routes(v4), ...parseIpv6Routes(v6)];
}
