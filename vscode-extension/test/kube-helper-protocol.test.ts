import { TpError } from '@telepresence-ts/core';
import t from 'tap';
import { fromWire, lineSplitter, slim, toWire } from '../src/kube-helper-protocol.js';

t.test('lineSplitter hands out whole lines across chunks and skips blank ones', (t) => {
  const lines: string[] = [];
  const feed = lineSplitter((l) => lines.push(l));
  feed('{"a":');
  feed('1}\n\n{"b"');
  t.same(lines, ['{"a":1}']);
  feed(':2}\n');
  t.same(lines, ['{"a":1}', '{"b":2}']);
  t.end();
});

t.test('errors cross the pipe with category, code and hint', (t) => {
  const back = fromWire(toWire(new TpError('config', 'kube-forbidden', 'no', { hint: 'ask' })));
  t.ok(back instanceof TpError);
  t.match(back, { category: 'config', code: 'kube-forbidden', message: 'no', hint: 'ask' });
  t.end();
});

t.test('slim drops managedFields and the last-applied annotation, and keeps the rest', (t) => {
  const obj = {
    metadata: { name: 'web', managedFields: [{ manager: 'kubectl' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', keep: 'me' } },
    spec: { replicas: 1 },
  };
  t.same(slim(obj), { metadata: { name: 'web', annotations: { keep: 'me' } }, spec: { replicas: 1 } });
  const bare: { metadata?: undefined; spec: object } = { spec: {} };
  t.same(slim(bare), { spec: {} });
  t.end();
});
