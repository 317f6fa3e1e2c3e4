import t from 'tap';
import { parseResolvConf } from '../../src/outbound/resolv-conf.js';

t.test('parses resolv.conf as glibc reads it', async (t) => {
  const cases: Array<{ name: string; text: string; nameservers: string[]; search: string[]; ndots: number }> = [
    { name: 'empty', text: '', nameservers: [], search: [], ndots: 1 },
    {
      name: 'typical',
      text: '# Generated\nnameserver 10.0.0.2\nnameserver 1.1.1.1\nsearch corp.example. lan\noptions ndots:2 timeout:1\n',
      nameservers: ['10.0.0.2', '1.1.1.1'],
      search: ['corp.example', 'lan'],
      ndots: 2,
    },
    {
      name: 'comments, tabs, CRLF and junk',
      text: '; old\r\nnameserver\t192.168.1.1 # router\r\nnameserver not-an-ip\r\nnameserver\r\nbogus line\r\n',
      nameservers: ['192.168.1.1'],
      search: [],
      ndots: 1,
    },
    {
      name: 'IPv6, with a link-local zone kept',
      text: 'nameserver fd00::53\nnameserver fe80::1%eth0\n',
      nameservers: ['fd00::53', 'fe80::1%eth0'],
      search: [],
      ndots: 1,
    },
    { name: 'the last search or domain line wins', text: 'search a.example b.example\ndomain c.example\n', nameservers: [], search: ['c.example'], ndots: 1 },
    { name: 'domain then search', text: 'domain c.example\nsearch a.example\n', nameservers: [], search: ['a.example'], ndots: 1 },
    { name: 'ndots is capped at 15', text: 'options ndots:40\n', nameservers: [], search: [], ndots: 15 },
    { name: 'the last ndots wins', text: 'options ndots:3\noptions rotate ndots:0\n', nameservers: [], search: [], ndots: 0 },
    { name: 'malformed ndots ignored', text: 'options ndots:x ndots:\n', nameservers: [], search: [], ndots: 1 },
    { name: 'leading spaces', text: '   nameserver 9.9.9.9\n', nameservers: ['9.9.9.9'], search: [], ndots: 1 },
  ];
  for (const tc of cases) {
    t.strictSame(parseResolvConf(tc.text), { nameservers: tc.nameservers, search: tc.search, ndots: tc.ndots }, tc.name);
  }
});
