import t from 'tap';
import { ENGAGEMENT_MODES, engagementMode, takesTraffic } from '../src/engagement.js';

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
