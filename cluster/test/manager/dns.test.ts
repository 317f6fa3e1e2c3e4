import t from 'tap';
import { askDns, DNS_TIMEOUT_MS } from '../../src/manager/dns.js';
import { dnsAnswer, dnsQuery, startResponder } from './dns-fixtures.js';

t.test('the query goes out unchanged and the answer with its ID comes back unchanged', async (t) => {
  const r = await startResponder(t, (q) => {
    const other = Buffer.from(dnsAnswer(q, '6.6.6.6'));
    other.writeUInt16BE((q.readUInt16BE(0) + 1) & 0xffff, 0);
    // A stray answer with another ID first: it is not taken for ours.
    return [other, dnsAnswer(q, '10.96.0.1')];
  });
  const q = dnsQuery(0x4242, 'web.default.svc.cluster.local');
  const answer = await askDns({ address: '127.0.0.1', port: r.port }, q);
  t.strictSame(r.udp, [q], 'asked as it was');
  t.strictSame(answer, dnsAnswer(q, '10.96.0.1'), 'the answer, byte for byte');
  t.strictSame(r.tcp, [], 'no TCP');
});

t.test('a truncated answer is asked again over TCP', async (t) => {
  const r = await startResponder(t, (q) => [dnsAnswer(q, '10.96.0.1', true).subarray(0, q.length)]);
  const q = dnsQuery(7, 'big.default.svc.cluster.local');
  const answer = await askDns({ address: '127.0.0.1', port: r.port }, q);
  t.strictSame(r.tcp, [q], 'the same question over TCP');
  t.strictSame(answer, dnsAnswer(q, '10.96.0.1'), "TCP's whole answer");
});

t.test('no answer: dns-timeout, a cluster error', async (t) => {
  const r = await startResponder(t, () => []);
  const started = Date.now();
  await t.rejects(askDns({ address: '127.0.0.1', port: r.port }, dnsQuery(1, 'slow.example'), 200), { category: 'cluster', code: 'dns-timeout' });
  t.ok(Date.now() - started < 2000, 'within the given timeout');
  t.equal(DNS_TIMEOUT_MS, 2000, 'the default is 2 s');
});

t.test('a query shorter than a DNS header: bad-dns-query, a user error, nothing sent', async (t) => {
  const r = await startResponder(t, (q) => [dnsAnswer(q, '10.96.0.1')]);
  await t.rejects(askDns({ address: '127.0.0.1', port: r.port }, Buffer.alloc(11)), { category: 'user', code: 'bad-dns-query' });
  t.strictSame(r.udp, []);
});
