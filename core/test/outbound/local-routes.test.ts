import t from 'tap';
import { parseIpv4Routes, parseIpv6Routes } from '../../src/outbound/local-routes.js';

t.test('parses /proc/net/route', async (t) => {
  const text = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'tp-sink\t0000600A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
    'veth1\t01FFF30A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0',
    '',
  ].join('\n');
  t.strictSame(parseIpv4Routes(text), [
    { device: 'eth0', cidr: '0.0.0.0/0' },
    { device: 'eth0', cidr: '192.0.2.0/24' },
    { device: 'tp-sink', cidr: '10.96.0.0/16' },
    { device: 'veth1', cidr: '10.243.255.1/32' },
  ]);
});

t.test('parses /proc/net/ipv6_route, leaving out loopback', async (t) => {
  const text = [
    'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0',
    '00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo',
  ].join('\n');
  t.strictSame(parseIpv6Routes(text), [
    { device: 'eth0', cidr: 'fd00::/64' },
    { device: 'eth0', cidr: '::/0' },
  ]);
});
