import { TpError } from '@telepresence-ts/core/errors';
import t from 'tap';
import { EnvReader } from '../../src/shared/env-reader.js';

t.test('port', (t) => {
  const cases: ReadonlyArray<{ value: string | undefined; want: number; ok: boolean }> = [
    { value: undefined, want: 80, ok: true },
    { value: '', want: 80, ok: true },
    { value: ' 8081 ', want: 8081, ok: true },
    { value: '65535', want: 65535, ok: true },
    { value: '0', want: 80, ok: false },
    { value: '65536', want: 80, ok: false },
    { value: '80a', want: 80, ok: false },
    { value: '-1', want: 80, ok: false },
    { value: '1e3', want: 80, ok: false },
  ];
  for (const c of cases) {
    const r = new EnvReader({ P: c.value });
    t.equal(r.port('P', 80), c.want, `P=${String(c.value)}`);
    if (c.ok) {
      t.doesNotThrow(() => r.done('x', null), `P=${String(c.value)} is valid`);
    } else {
      t.throws(() => r.done('x', null), { code: 'bad-environment' }, `P=${String(c.value)} is rejected`);
    }
  }
  t.end();
});

t.test('dnsLabel', (t) => {
  t.equal(new EnvReader({}).dnsLabel('N', 'dflt'), 'dflt');
  t.equal(new EnvReader({ N: 'my-ns' }).dnsLabel('N', 'dflt'), 'my-ns');
  for (const bad of ['My-NS', '-ns', 'ns-', 'a.b', 'x'.repeat(64)]) {
    const r = new EnvReader({ N: bad });
    r.dnsLabel('N', 'dflt');
    t.throws(() => r.done('x', null), /not a valid Kubernetes name/, bad);
  }
  const missing = new EnvReader({});
  missing.dnsLabel('N');
  t.throws(() => missing.done('x', null), /N is required but not set/, 'required without fallback');
  t.end();
});

t.test('hostName and ip', (t) => {
  const r = new EnvReader({ H1: 'traffic-manager.tp-system', H2: '10.0.0.1', H3: 'Bad_Host', I1: 'fd00::1', I2: '300.1.1.1' });
  t.equal(r.hostName('H1', 'x'), 'traffic-manager.tp-system');
  t.equal(r.hostName('H2', 'x'), '10.0.0.1');
  t.equal(r.hostName('H0', 'fallback.ns'), 'fallback.ns');
  r.hostName('H3', 'x');
  t.equal(r.ip('I1'), 'fd00::1');
  t.equal(r.ip('I0'), undefined);
  r.ip('I2');
  t.throws(() => r.done('x', null), {
    message: 'invalid environment: H3="Bad_Host" is not a host name or IP address; I2="300.1.1.1" is not an IP address',
  });
  t.end();
});

t.test('image', (t) => {
  t.equal(new EnvReader({}).image('I', 'reg/agent:1'), 'reg/agent:1');
  const r = new EnvReader({ I: ' example.com:5000/agent@sha256:abc ' });
  t.equal(r.image('I', 'x'), 'example.com:5000/agent@sha256:abc');
  t.doesNotThrow(() => r.done('x', null));
  const bad = new EnvReader({ I: 'agent 1' });
  bad.image('I', 'x');
  t.throws(() => bad.done('x', null), /I="agent 1" is not an image reference/);
  t.end();
});

t.test('logLevel', (t) => {
  t.equal(new EnvReader({}).logLevel('L'), 'info');
  t.equal(new EnvReader({ L: 'DEBUG' }).logLevel('L'), 'debug');
  const r = new EnvReader({ L: 'verbose' });
  t.equal(r.logLevel('L'), 'info');
  t.throws(() => r.done('x', null), /L="verbose" is not one of debug, info, warn, error/);
  t.end();
});

t.test('resources: JSON checked as agent configurations check it, in canonical form', (t) => {
  const cases: ReadonlyArray<{ name: string; value: string | undefined; want: unknown }> = [
    { name: 'unset', value: undefined, want: undefined },
    { name: 'empty', value: ' ', want: undefined },
    { name: 'an empty object', value: '{}', want: undefined },
    { name: 'empty lists', value: '{"requests":{},"limits":{}}', want: undefined },
    {
      name: 'keys sorted, as toJson writes them',
      value: '{"requests":{"memory":"64Mi","cpu":"50m"},"limits":{"memory":"256Mi"}}',
      want: { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } },
    },
    { name: "a number, as Helm's --set makes one", value: '{"limits":{"cpu":2}}', want: { limits: { cpu: '2' } } },
  ];
  for (const c of cases) {
    const r = new EnvReader(c.value === undefined ? {} : { R: c.value });
    t.strictSame(r.resources('R'), c.want, c.name);
    t.doesNotThrow(() => r.done('test', {}), `${c.name}: no problem`);
  }
  const bad: ReadonlyArray<[string, RegExp]> = [
    ['requests: cpu=1', /R="requests: cpu=1" is not JSON/],
    ['[]', /not an object of requests and limits/],
    ['{"claims":[]}', /"claims" is not one of limits, requests/],
    ['{"requests":{"mem":"1Gi"}}', /requests: "mem" is not one of cpu, memory, ephemeral-storage/],
    ['{"limits":{"memory":"128m"}}', /limits: memory=128m is not a whole number of bytes/],
    ['{"limits":{"cpu":"lots"}}', /limits: cpu=lots: "lots" is not a Kubernetes quantity/],
    ['{"limits":{"cpu":true}}', /limits: cpu: true is not a quantity/],
    ['{"requests":{"cpu":"1"},"limits":{"cpu":"500m"}}', /the cpu request 1 is above its limit 500m, which Kubernetes refuses/],
  ];
  for (const [value, message] of bad) {
    const r = new EnvReader({ R: value });
    t.equal(r.resources('R'), undefined, value);
    t.throws(() => r.done('test', {}), { code: 'bad-environment', message }, value);
  }
  t.end();
});

t.test('done reports every problem at once, as a config TpError with a hint', (t) => {
  const r = new EnvReader({ A: 'x', B: 'y' });
  r.port('A', 1);
  r.port('B', 2);
  r.required('C');
  try {
    r.done('traffic-agent', null);
    t.fail('should throw');
  } catch (err: unknown) {
    t.ok(err instanceof TpError);
    if (err instanceof TpError) {
      t.equal(err.category, 'config');
      t.equal(
        err.message,
        'invalid environment: A="x" is not a port number (1-65535); B="y" is not a port number (1-65535); C is required but not set',
      );
      t.equal(err.hint, 'fix the environment of the traffic-agent container');
    }
  }
  t.end();
});

t.test('optional treats blank as unset', (t) => {
  const r = new EnvReader({ A: '  ', B: 'v' });
  t.equal(r.optional('A'), undefined);
  t.equal(r.optional('B'), 'v');
  t.equal(r.done('x', 42), 42);
  t.end();
});
