/**
 * IPv4 and IPv6 subnets as outbound access needs them: parsing the CIDRs that the cluster and the
 * user give, telling whether two overlap, and taking one set away from another (routes for the
 * cluster's subnets minus --never-proxy). Pure: no I/O. Shared by the user daemon, the network
 * daemon and the traffic-manager, so that every one of them reads a CIDR the same way.
 */
import { isIP } from 'node:net';
import { TpError } from '../errors.js';

/** A subnet: its family, its first address as a bigint, and its prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBig(ip: string): bigint {
  // An embedded IPv4 tail ("::ffff:1.2.3.4") becomes two 16-bit groups first.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const n = v4ToBig(v4[1] as string);
    text = `${text.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(fill).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** An address as a bigint, with its family; undefined when `ip` is not an IP address. */
export function parseIp(ip: string): { family: 4 | 6; value: bigint } | undefined {
  const family = isIP(ip);
  if (family === 4) return { family, value: v4ToBig(ip) };
  if (family === 6) return { family, value: v6ToBig(ip) };
  return undefined;
}

function mask(family: 4 | 6, bits: number): bigint {
  const width = BigInt(WIDTH[family]);
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(bits))) - 1n);
}

/**
 * Parses "10.96.0.0/16", "fd00::/108" or a bare address (a host route: /32 or /128). Host bits
 * are cleared ("10.96.3.4/16" is 10.96.0.0/16). Undefined when the text is not a CIDR.
 */
export function tryParseCidr(text: string): Cidr | undefined {
  const [addr = '', prefix, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const ip = parseIp(addr);
  if (ip === undefined) return undefined;
  const width = WIDTH[ip.family];
  const bits = prefix === undefined ? width : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(bits >= 0 && bits <= width)) return undefined;
  return { family: ip.family, base: ip.value & mask(ip.family, bits), bits };
}

/** tryParseCidr, or a `user` TpError naming `what` (e.g. "--also-proxy") and the bad value. */
export function parseCidr(text: string, what: string): Cidr {
  const cidr = tryParseCidr(text);
  if (cidr === undefined) {
    throw new TpError('user', 'bad-subnet', `${what} ${JSON.stringify(text)} is not a subnet`, {
      hint: `give a CIDR such as 10.0.0.0/16 or fd00::/108`,
    });
  }
  return cidr;
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function bigToV6(n: bigint): string {
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((n >> s) & 0xffffn));
  // Compress the longest run of two or more zero groups, as RFC 5952 asks.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The address part of a CIDR (or an address of the given family) as text. */
export function formatIp(family: 4 | 6, value: bigint): string {
  return family === 4 ? bigToV4(value) : bigToV6(value);
}

/** "10.96.0.0/16". */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.family, c.base)}/${c.bits}`;
}

function last(c: Cidr): bigint {
  return c.base | ((1n << BigInt(WIDTH[c.family] - c.bits)) - 1n);
}

/** True when the two subnets share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base <= last(b) && b.base <= last(a);
}

/** True when `outer` holds every address of `inner`. */
export function covers(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.bits <= inner.bits && (inner.base & mask(outer.family, outer.bits)) === outer.base;
}

/** True when the address is inside the subnet. */
export function contains(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  return p !== undefined && p.family === c.family && (p.value & mask(c.family, c.bits)) === c.base;
}

/**
 * `from` minus `remove`: the fewest subnets that hold every address of `from` that no subnet of
 * `remove` holds. A removed subnet inside a routed one splits it into its halves, down to the
 * removed prefix (at most one subnet per bit).
 */
export function subtract(from: readonly Cidr[], remove: readonly Cidr[]): Cidr[] {
  let out = [...from];
  for (const r of remove) {
    const next: Cidr[] = [];
    for (const c of out) {
      if (!overlaps(c, r)) next.push(c);
      else if (covers(r, c)) continue;
      else next.push(...splitAround(c, r));
    }
    out = next;
  }
  return out;
}

/** `c` minus `r`, where `r` lies strictly inside `c`. */
function splitAround(c: Cidr, r: Cidr): Cidr[] {
  const out: Cidr[] = [];
  const width = WIDTH[c.family];
  let cur = c;
  while (cur.bits < r.bits) {
    const bits = cur.bits + 1;
    const half = 1n << BigInt(width - bits);
    const low: Cidr = { family: c.family, base: cur.base, bits };
    const high: Cidr = { family: c.family, base: cur.base | half, bits };
    if (covers(low, r)) {
      out.push(high);
      cur = low;
    } else {
      out.push(low);
      cur = high;
    }
  }
  return out;
}

/** Drops subnets held by another of the list, and duplicates; keeps the first-seen order. */
export function dedupe(list: readonly Cidr[]): Cidr[] {
  return list.filter((c, i) => !list.some((o, j) => j !== i && covers(o, c) && (o.bits < c.bits || j < i)));
}
