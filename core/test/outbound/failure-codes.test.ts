import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { OUTBOUND_FAILURE_CODES } from '../../src/outbound/outbound.js';

/**
 * Codes raised by outbound access's code that a command connecting on its way must not survive:
 * each one is a decision of the user's, never a failure of this workstation's networking.
 */
const NOT_FAILURES: Readonly<Record<string, string>> = {
  'bad-subnet': 'a bad --also-proxy/--never-proxy value, which only an explicit connect passes',
  'bad-outbound-config': 'the same, as the network daemon checks it',
  'connect-cancelled': 'the user closed the connection while it came up',
  'outbound-cancelled': 'the same, as the network daemon sees it',
  'network-daemon-running': 'only `sudo kubectl telepresence network-daemon` raises it, never a connect',
};

/** Every error code written in the sources under `dir`: `new TpError(category, 'code'` and `code: 'code'`. */
function codesIn(dir: string): Set<string> {
  const codes = new Set<string>();
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    if (!name.endsWith('.ts')) continue;
    const text = readFileSync(join(dir, name), 'utf8');
    for (const m of text.matchAll(/new TpError\(\s*'[a-z]+',\s*'([a-z0-9-]+)'/g)) codes.add(m[1]!);
    for (const m of text.matchAll(/\bcode: '([a-z0-9-]+)'/g)) codes.add(m[1]!);
  }
  return codes;
}

t.test('every failure that outbound access raises is in OUTBOUND_FAILURE_CODES, or is a decision of the user', (t) => {
  const src = join(import.meta.dirname, '..', '..', 'src');
  const raised = new Set([...codesIn(join(src, 'network')), ...codesIn(join(src, 'outbound'))]);
  t.ok(raised.size > 10, `found the codes (${raised.size})`);
  const missing = [...raised].filter((c) => !OUTBOUND_FAILURE_CODES.has(c) && !(c in NOT_FAILURES)).sort();
  t.strictSame(missing, [], 'none left out: add a new code to OUTBOUND_FAILURE_CODES, or to NOT_FAILURES with why');
  const stale = [...OUTBOUND_FAILURE_CODES].filter((c) => !raised.has(c)).sort();
  t.strictSame(stale, [], 'and none listed that nothing raises');
  t.end();
});
