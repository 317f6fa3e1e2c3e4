import t from 'tap';
import { fileURLToPath } from 'node:url';
import { injectAgent } from '../../src/injector/inject.js';
import { applyJsonPatch, diffToJsonPatch, escapePointerToken, jsonEqual } from '../../src/injector/patch.js';
import { patchCases } from './samples.js';

// Beside the tests rather than in a root tap-snapshots/ folder: the injector's tests own them.
// Regenerate with: node tools/run-tap.mjs cluster/test/injector/patch.test.ts -- --snapshot
t.snapshotFile = fileURLToPath(new URL('./fixtures/patch.test.ts.snapshot.cjs', import.meta.url));

t.test('escapePointerToken (RFC 6901)', (t) => {
  const cases: ReadonlyArray<[string, string]> = [
    ['plain', 'plain'],
    ['telepresence.io/agent-config-hash', 'telepresence.io~1agent-config-hash'],
    ['a~b', 'a~0b'],
    // `~1` in a key must not come back as `/`: escape ~ first.
    ['~1', '~01'],
    ['/~', '~1~0'],
  ];
  for (const [token, want] of cases) t.equal(escapePointerToken(token), want, token);
  t.end();
});

t.test('diffToJsonPatch', (t) => {
  const cases: ReadonlyArray<{ name: string; before: unknown; after: unknown; want: unknown[] }> = [
    { name: 'equal documents', before: { a: [1, { b: 2 }] }, after: { a: [1, { b: 2 }] }, want: [] },
    { name: 'key order does not matter', before: { a: 1, b: 2 }, after: { b: 2, a: 1 }, want: [] },
    { name: 'undefined counts as absent', before: { a: 1, b: undefined }, after: { a: 1 }, want: [] },
    { name: 'added member', before: { a: 1 }, after: { a: 1, b: { c: 2 } }, want: [{ op: 'add', path: '/b', value: { c: 2 } }] },
    { name: 'removed member', before: { a: 1, b: 2 }, after: { a: 1 }, want: [{ op: 'remove', path: '/b' }] },
    { name: 'nested replace', before: { a: { b: 1 } }, after: { a: { b: 2 } }, want: [{ op: 'replace', path: '/a/b', value: 2 }] },
    {
      name: 'arrays are replaced whole',
      before: { l: [1, 2, 3] },
      after: { l: [1, 2, 3, 4] },
      want: [{ op: 'replace', path: '/l', value: [1, 2, 3, 4] }],
    },
    { name: 'type change', before: { a: { b: 1 } }, after: { a: [1] }, want: [{ op: 'replace', path: '/a', value: [1] }] },
    { name: 'null is a value', before: { a: null }, after: { a: 1 }, want: [{ op: 'replace', path: '/a', value: 1 }] },
    {
      name: 'keys with / and ~',
      before: { m: { 'x/y': 1 } },
      after: { m: { 'x/y': 2, 'a~b': 3 } },
      want: [
        { op: 'replace', path: '/m/x~1y', value: 2 },
        { op: 'add', path: '/m/a~0b', value: 3 },
      ],
    },
    { name: 'different roots', before: 1, after: { a: 1 }, want: [{ op: 'replace', path: '', value: { a: 1 } }] },
  ];
  for (const c of cases) {
    const ops = diffToJsonPatch(c.before, c.after);
    t.strictSame(ops, c.want, c.name);
    t.ok(jsonEqual(applyJsonPatch(c.before, ops), c.after), `${c.name}: applying the patch gives the target`);
  }
  t.end();
});

for (const c of patchCases()) {
  t.test(`patch snapshot: ${c.name}`, (t) => {
    const injected = injectAgent(c.pod, c.config);
    const ops = diffToJsonPatch(c.pod, injected);
    t.matchSnapshot(ops, 'patch');
    t.ok(jsonEqual(applyJsonPatch(c.pod, ops), injected), 'applying the patch gives the injected pod');
    t.strictSame(diffToJsonPatch(injected, injectAgent(injected, c.config)), [], 'the second pass is empty');
    t.end();
  });
}

t.test('patch snapshot: second pass over an injected pod', (t) => {
  const first = patchCases()[0];
  if (first === undefined) throw new Error('no cases');
  const injected = injectAgent(first.pod, first.config);
  t.matchSnapshot(diffToJsonPatch(injected, injectAgent(injected, first.config)), 'patch');
  t.end();
});
