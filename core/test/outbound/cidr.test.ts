import t from 'tap';
import { contains, covers, dedupe, formatCidr, formatIp, overlaps, parseCidr, parseIp, subtract, tryParseCidr, type Cidr } from '../../src/outbound/cidr.js';
import { isTpError } from '../../src/errors.js';

const c = (text: string): Cidr => parseCidr(text, 'test');
const texts = (list: readonly Cidr[]): string[] => list.map(formatCidr);

t.test('parses CIDRs and bare addresses, clearing host bits', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['10.96.0.0/16', '10.96.0.0/16'],
    ['10.96.3.4/16', '10.96.0.0/16'],
    [' 10.0.0.1 ', '10.0.0.1/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/31', '255.255.255.254/31'],
    ['fd00::/108', 'fd00::/108'],
    ['fd00::1234:5678/108', 'fd00::1230:0/108'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1/128'],
    ['::/0', '::/0'],
    ['::1', '::1/128'],
    ['2001:db8::ffff:1.2.3.4/128', '2001:db8::ffff:102:304/128'],
    ['::ffff:10.0.0.1', '::ffff:a00:1/128'],
    ['fe80::1:0:0:1/64', 'fe80::/64'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3/128'],
    ['10.0.0.0/33', undefined],
    ['10.0.0.0/', undefined],
    ['10.0.0.0/8/8', undefined],
    ['10.0.0.0/-1', undefined],
    ['10.0.0.0/abc', undefined],
    ['fd00::/129', undefined],
    ['10.0.0', undefined],
    ['cluster.local', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) {
    const got = tryParseCidr(text);
    t.equal(got === undefined ? undefined : formatCidr(got), want, JSON.stringify(text));
  }
});

t.test('parseCidr names the flag and the value in a user error', async (t) => {
  try {
    parseCidr('10.0.0.0/40', '--also-proxy');
    t.fail('should throw');
  } catch (err) {
    t.ok(isTpError(err));
    if (isTpError(err)) {
      t.equal(err.category, 'user');
      t.equal(err.code, 'bad-subnet');
      t.match(err.message, /--also-proxy "10\.0\.0\.0\/40"/);
    }
  }
});

t.test('parseIp and formatIp round-trip both families', async (t) => {
  const cases: Array<[string, 4 | 6 | undefined, string | undefined]> = [
    ['192.168.1.20', 4, '192.168.1.20'],
    ['0.0.0.0', 4, '0.0.0.0'],
    ['fd00::a', 6, 'fd00::a'],
    ['0:0:0:0:0:0:0:0', 6, '::'],
    ['fe80::', 6, 'fe80::'],
    ['not-an-ip', undefined, undefined],
  ];
  for (const [text, family, back] of cases) {
    const p = parseIp(text);
    t.equal(p?.family, family, `${text} family`);
    t.equal(p === undefined ? undefined : formatIp(p.family, p.value), back, `${text} formatted`);
  }
});

t.test('overlaps, covers and contains', async (t) => {
  const cases: Array<[string, string, boolean, boolean]> = [
    // a, b, overlaps(a, b), covers(a, b)
    ['10.0.0.0/8', '10.96.0.0/12', true, true],
    ['10.96.0.0/12', '10.0.0.0/8', true, false],
    ['10.0.0.0/16', '10.1.0.0/16', false, false],
    ['10.0.0.0/16', '10.0.0.0/16', true, true],
    ['10.0.255.255/32', '10.0.0.0/16', true, false],
    ['0.0.0.0/0', '172.16.0.0/12', true, true],
    ['fd00::/8', 'fd12::/16', true, true],
    ['fd00::/16', 'fd01::/16', false, false],
    // Different families never overlap, even where the numbers would.
    ['0.0.0.0/0', '::/0', false, false],
    ['::/96', '10.0.0.0/8', false, false],
  ];
  for (const [a, b, o, cov] of cases) {
    t.equal(overlaps(c(a), c(b)), o, `overlaps(${a}, ${b})`);
    t.equal(overlaps(c(b), c(a)), o, `overlaps(${b}, ${a})`);
    t.equal(covers(c(a), c(b)), cov, `covers(${a}, ${b})`);
  }
  const inside: Array<[string, string, boolean]> = [
    ['10.96.0.0/12', '10.96.0.10', true],
    ['10.96.0.0/12', '10.111.255.255', true],
    ['10.96.0.0/12', '10.112.0.0', false],
    ['fd00::/108', 'fd00::f:ffff', true],
    ['fd00::/108', 'fd00::10:0', false],
    ['10.0.0.0/8', '::ffff:10.0.0.1', false],
    ['10.0.0.0/8', 'garbage', false],
  ];
  for (const [cidr, ip, want] of inside) t.equal(contains(c(cidr), ip), want, `contains(${cidr}, ${ip})`);
});

t.test('subtract splits a routed subnet around what is removed', async (t) => {
  const cases: Array<{ name: string; from: string[]; remove: string[]; want: string[] }> = [
    { name: 'disjoint: unchanged', from: ['10.0.0.0/16'], remove: ['192.168.0.0/16'], want: ['10.0.0.0/16'] },
    { name: 'covered: gone', from: ['10.1.0.0/16'], remove: ['10.0.0.0/8'], want: [] },
    { name: 'equal: gone', from: ['10.1.0.0/16'], remove: ['10.1.0.0/16'], want: [] },
    { name: 'one half', from: ['10.0.0.0/8'], remove: ['10.128.0.0/9'], want: ['10.0.0.0/9'] },
    {
      name: 'a /24 out of a /22',
      from: ['10.0.0.0/22'],
      remove: ['10.0.1.0/24'],
      want: ['10.0.2.0/23', '10.0.0.0/24'],
    },
    {
      name: 'one host out of a /29',
      from: ['192.168.0.0/29'],
      remove: ['192.168.0.5'],
      want: ['192.168.0.0/30', '192.168.0.6/31', '192.168.0.4/32'],
    },
    {
      name: 'two removals, other family untouched',
      from: ['10.0.0.0/16', 'fd00::/64'],
      remove: ['10.0.0.0/17', '10.0.192.0/18', 'fd00::/65'],
      want: ['10.0.128.0/18', 'fd00:0:0:0:8000::/65'],
    },
  ];
  for (const tc of cases) {
    const got = subtract(tc.from.map(c), tc.remove.map(c));
    t.strictSame(texts(got).sort(), tc.want.map((w) => formatCidr(c(w))).sort(), tc.name);
    // Whatever is left holds no removed address, and with the removed parts gives the original size.
    for (const g of got) for (const r of tc.remove.map(c)) t.notOk(overlaps(g, r), `${tc.name}: ${formatCidr(g)} clear of ${formatCidr(r)}`);
  }
});

t.test('subtract keeps every address it should (counted)', async (t) => {
  const size = (x: Cidr): bigint => 1n << BigInt((x.family === 4 ? 32 : 128) - x.bits);
  const from = [c('10.0.0.0/12')];
  const remove = [c('10.3.4.0/22'), c('10.8.0.1')];
  const left = subtract(from, remove);
  const total = left.reduce((acc, x) => acc + size(x), 0n);
  t.equal(total, size(c('10.0.0.0/12')) - size(remove[0] as Cidr) - 1n);
});

t.test('dedupe drops duplicates and subnets inside others, keeping order', async (t) => {
  const cases: Array<[string[], string[]]> = [
    [['10.0.0.0/8', '10.0.0.0/8'], ['10.0.0.0/8']],
    [['10.96.0.0/12', '10.0.0.0/8', '192.168.0.0/16'], ['10.0.0.0/8', '192.168.0.0/16']],
    [['10.1.0.0/16', '10.2.0.0/16'], ['10.1.0.0/16', '10.2.0.0/16']],
    [['fd00::/64', '10.0.0.0/8', 'fd00::1', 'fd00::/64'], ['fd00::/64', '10.0.0.0/8']],
    [['10.0.0.5/8', '10.0.0.0/8'], ['10.0.0.0/8']],
    [[], []],
  ];
  for (const [input, want] of cases) t.strictSame(texts(dedupe(input.map(c))), want, input.join(' '));
});
