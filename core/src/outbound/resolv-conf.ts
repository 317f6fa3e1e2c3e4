/**
 * What /etc/resolv.conf says, for outbound access: the nameservers whose queries the network
 * daemon redirects to the user daemon's resolver, and where that resolver passes on the names
 * that are not the cluster's. Pure parsing; the callers read the file.
 */
import { isIP } from 'node:net';

export const RESOLV_CONF_PATH = '/etc/resolv.conf';

export interface ResolvConf {
  /** In file order; IPv6 link-local zones ("fe80::1%eth0") are kept as written. */
  readonly nameservers: readonly string[];
  /** The `search` (or older `domain`) list, without trailing dots. */
  readonly search: readonly string[];
  /** `options ndots:N`; glibc's default is 1. */
  readonly ndots: number;
}

/** Parses resolv.conf text as glibc does: the last `search`/`domain` line wins. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  let ndots = 1;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === 'nameserver' && values[0] !== undefined && isIP(values[0].split('%')[0] ?? '') !== 0) nameservers.push(values[0]);
    else if (key === 'search' || key === 'domain') search = values.map((v) => v.replace(/\.$/, '')).filter((v) => v !== '');
    else if (key === 'options') {
      for (const opt of values) {
        const m = /^ndots:(\d+)$/.exec(opt);
        if (m !== null) ndots = Math.min(Number(m[1]), 15);
      }
    }
  }
  return { nameservers, search, ndots };
}
