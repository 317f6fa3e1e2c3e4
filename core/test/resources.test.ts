import t from 'tap';
import { canonicalResources, compareQuantities, quantityProblem, quantityValue, resourcesProblem } from '../src/resources.js';

t.test('quantityProblem: what a container may not be given', async (t) => {
  const cases: Array<[string, string, RegExp | undefined]> = [
    ['cpu', '100m', undefined],
    ['cpu', '0.5', undefined],
    ['memory', '128Mi', undefined],
    ['ephemeral-storage', '1G', undefined],
    ['memory', '64MB', /"64MB" is not a Kubernetes quantity/],
    ['cpu', '-1', /cpu=-1 is negative/],
    ['memory', '128m', /memory=128m is not a whole number of bytes/],
  ];
  for (const [name, quantity, problem] of cases) {
    const got = quantityProblem(name, quantity);
    if (problem === undefined) t.equal(got, undefined, `${name}=${quantity}`);
    else t.match(got, problem, `${name}=${quantity}`);
  }
});

t.test('compareQuantities: exact, whatever the units', async (t) => {
  const q = (s: string) => quantityValue(s) ?? { num: 0n, den: 1n };
  t.equal(compareQuantities(q('100m'), q('0.1')), 0);
  t.equal(compareQuantities(q('1G'), q('900Mi')), 1);
  t.equal(compareQuantities(q('1Gi'), q('1.1G')), -1);
});

t.test('resourcesProblem: requests and limits of cpu, memory and ephemeral-storage', async (t) => {
  const good: unknown[] = [{}, { requests: {} }, { requests: { cpu: '25m', memory: '64Mi' }, limits: { memory: '64Mi' } }, { limits: { cpu: 1 } }];
  for (const value of good) t.equal(resourcesProblem(value), undefined, JSON.stringify(value));
  const bad: Array<[unknown, RegExp]> = [
    [null, /not an object of requests and limits/],
    ['cpu=1', /not an object/],
    [{ claims: [] }, /"claims" is not one of limits, requests/],
    [{ requests: ['cpu'] }, /requests is not an object of name: quantity/],
    [{ limits: { 'nvidia.com/gpu': '1' } }, /limits: "nvidia.com\/gpu" is not one of cpu, memory, ephemeral-storage/],
    [{ requests: { memory: 'lots' } }, /requests: memory=lots: "lots" is not a Kubernetes quantity/],
    [{ requests: { memory: null } }, /requests: memory: null is not a quantity/],
    [{ requests: { memory: '1G' }, limits: { memory: '900Mi' } }, /the memory request 1G is above its limit 900Mi, which Kubernetes refuses/],
  ];
  for (const [value, message] of bad) t.match(resourcesProblem(value), message, JSON.stringify(value));
});

t.test("canonicalResources: one form for equal settings, the one Helm's toJson writes", async (t) => {
  const a = canonicalResources({ requests: { memory: '64Mi', cpu: '25m' }, limits: { memory: '256Mi' } });
  const b = canonicalResources({ limits: { memory: '256Mi' }, requests: { cpu: '25m', memory: '64Mi' } });
  t.equal(JSON.stringify(a), '{"limits":{"memory":"256Mi"},"requests":{"cpu":"25m","memory":"64Mi"}}');
  t.equal(JSON.stringify(a), JSON.stringify(b), 'in whatever order they came');
  t.strictSame(canonicalResources({ limits: { cpu: 2 } }), { limits: { cpu: '2' } }, 'numbers become quantities');
  t.equal(canonicalResources({}), undefined, 'nothing set');
  t.equal(canonicalResources({ requests: {}, limits: {} }), undefined, 'empty lists are nothing set');
});
