process.env.TZ = 'UTC';
import t from 'tap';
import type { TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import { MASKED, formatBytes, formatDuration, formatTrafficEvent, isCredentialHeader, maskHeaders, viewOf } from '../src/traffic-view.js';

function event(over: Partial<TrafficEvent> = {}): TrafficEvent {
  return {
    interceptId: 's1:web',
    kind: 'http',
    startedAt: Date.UTC(2026, 0, 2, 12, 0, 1, 250),
    durationMs: 12.34,
    podName: 'web-1',
    source: '10.0.0.5:4321',
    answeredBy: 'workstation',
    bytesIn: 120,
    bytesOut: 2150,
    method: 'GET',
    path: '/api/x',
    status: 200,
    requestHeaders: [
      { name: 'Host', value: 'web' },
      { name: 'Authorization', value: 'Bearer abc.def' },
    ],
    responseHeaders: [{ name: 'Set-Cookie', value: 'sid=1' }],
    requestBody: Buffer.alloc(0),
    responseBody: Buffer.alloc(0),
    error: '',
    droppedBytes: 0,
    ...over,
  };
}

t.test('credential headers', async (t) => {
  const cases: ReadonlyArray<[string, boolean]> = [
    ['Authorization', true],
    ['proxy-authorization', true],
    ['Cookie', true],
    ['set-cookie', true],
    ['X-API-Key', true],
    ['x-apikey', true],
    ['X-Auth-Token', true],
    ['x-client-secret', true],
    ['X-Db-Password', true],
    ['Content-Type', false],
    ['Host', false],
    ['x-request-id', false],
  ];
  for (const [name, masked] of cases) t.equal(isCredentialHeader(name), masked, name);
});

t.test('maskHeaders keeps the scheme of an Authorization, masks the rest, and shows all when asked', async (t) => {
  const headers = [
    { name: 'Authorization', value: 'Bearer abc.def' },
    { name: 'Authorization', value: 'opaque' },
    { name: 'Cookie', value: 'a=1' },
    { name: 'Accept', value: '*/*' },
  ];
  t.strictSame(maskHeaders(headers), [
    { name: 'Authorization', value: `Bearer ${MASKED}` },
    { name: 'Authorization', value: MASKED },
    { name: 'Cookie', value: MASKED },
    { name: 'Accept', value: '*/*' },
  ]);
  t.strictSame(maskHeaders(headers, true), headers);
  t.not(maskHeaders(headers, true)[0], headers[0], 'copies, never the caller’s objects');
});

t.test('one line per event', async (t) => {
  t.strictSame(formatTrafficEvent(event()), ['12:00:01.250  GET /api/x  200  12 ms  workstation  pod/web-1']);
  t.strictSame(formatTrafficEvent(event({ kind: 'tcp', answeredBy: 'app', durationMs: 340 })), ['12:00:01.250  peer 10.0.0.5:4321  in 120 B  out 2.1 KiB  340 ms  app  pod/web-1']);
  t.strictSame(formatTrafficEvent(event({ kind: 'tcp', answeredBy: 'app', droppedBytes: 4096, durationMs: 1500 })), [
    '12:00:01.250  peer 10.0.0.5:4321  in 120 B  out 2.1 KiB  1.5 s  app  pod/web-1  dropped 4.0 KiB',
  ]);
  t.strictSame(formatTrafficEvent(event({ status: 0, error: 'the caller hung up' })), ['12:00:01.250  GET /api/x  ---  12 ms  workstation  pod/web-1  error: the caller hung up']);
  t.strictSame(formatTrafficEvent(event({ requestBody: Buffer.from('{"a":1}') }), { headers: true, bodies: true }), [
    '12:00:01.250  GET /api/x  200  12 ms  workstation  pod/web-1',
    '    > Host: web',
    `    > Authorization: Bearer ${MASKED}`,
    `    < Set-Cookie: ${MASKED}`,
    '    > (body) {"a":1}',
  ]);
});

t.test('the JSON view: masked unless asked, bodies only when asked, binary as base64', async (t) => {
  const v = viewOf(event({ requestBody: Buffer.from([0xff, 0x00]) }));
  t.match(v, { kind: 'http', startedAt: '2026-01-02T12:00:01.250Z', durationMs: 12.3, pod: 'web-1', answeredBy: 'workstation', method: 'GET', path: '/api/x', status: 200 });
  t.equal(v.requestHeaders?.[1]?.value, `Bearer ${MASKED}`);
  t.notOk('requestBody' in v);
  t.equal(viewOf(event(), { showCredentials: true }).requestHeaders?.[1]?.value, 'Bearer abc.def');
  t.equal(viewOf(event({ requestBody: Buffer.from([0xff, 0x00]) }), { bodies: true }).requestBody, 'base64:/wA=');
  const tcp = viewOf(event({ kind: 'tcp', droppedBytes: 5 }));
  t.notOk('method' in tcp, 'a connection has no HTTP fields');
  t.equal(tcp.droppedBytes, 5);
});

t.test('sizes and durations', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1023), '1023 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(3 * 1024 * 1024), '3.0 MiB');
  t.equal(formatDuration(0.44), '0.4 ms');
  t.equal(formatDuration(12.6), '13 ms');
  t.equal(formatDuration(2500), '2.5 s');
});
