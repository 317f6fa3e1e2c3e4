import t from 'tap';
import { ENGAGEMENT_MODES, describeReplacePorts, engagementMode, isReplace, replaceLocalPort, takesContainer, takesTraffic } from '../src/engagement.js';

t.test('engagementMode: empty is intercept; the known modes; anything else refused with the list', async (t) => {
  t.equal(engagementMode({ mode: '' }), 'intercept');
  t.equal(engagementMode({}), 'intercept');
  for (const m of ENGAGEMENT_MODES) t.equal(engagementMode({ mode: m }), m);
  t.throws(() => engagementMode({ mode: 'Ingest' }), { code: 'bad-mode', category: 'user', hint: 'use one of intercept, ingest, wiretap, replace' });
});

t.test('takesTraffic: all but an ingest', async (t) => {
  t.equal(takesTraffic({ mode: '' }), true);
  t.equal(takesTraffic({ mode: 'intercept' }), true);
  t.equal(takesTraffic({ mode: 'ingest' }), false);
});

t.test('isReplace and takesContainer: a replace and an ingest name a container, an intercept a port', async (t) => {
  t.equal(isReplace({ mode: 'replace' }), true);
  t.equal(isReplace({ mode: '' }), false);
  t.equal(takesTraffic({ mode: 'replace' }), true);
  t.equal(takesContainer({ mode: 'replace' }), true);
  t.equal(takesContainer({ mode: 'ingest' }), true);
  t.equal(takesContainer({ mode: '' }), false);
  t.equal(takesContainer({ mode: 'intercept' }), false);
});

t.test('replaceLocalPort: the mapped port, else the same number', async (t) => {
  const spec = { ports: [{ containerPort: 8080, localPort: 18080 }, { containerPort: 9090, localPort: 9090 }] };
  const cases: Array<[string, number, number]> = [
    ['mapped elsewhere', 8080, 18080],
    ['mapped to itself', 9090, 9090],
    ['not listed', 7070, 7070],
  ];
  for (const [name, containerPort, want] of cases) t.test(name, async (t) => t.equal(replaceLocalPort(spec, containerPort), want));
  t.equal(replaceLocalPort({ ports: [] }, 80), 80, 'no ports listed');
  t.equal(replaceLocalPort({}, 80), 80, 'no ports at all');
});

t.test('describeReplacePorts: a moved port with its arrow, a kept one once', async (t) => {
  t.equal(describeReplacePorts([{ containerPort: 8080, localPort: 18080 }, { containerPort: 9090, localPort: 9090 }]), '8080 -> 18080, 9090');
  t.equal(describeReplacePorts([]), '');
});
