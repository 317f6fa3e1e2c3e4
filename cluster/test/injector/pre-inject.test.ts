import t from 'tap';
import { preInjectionReason } from '../../src/injector/pre-inject.js';

t.test('which annotations ask for pre-injection', (t) => {
  const cases: ReadonlyArray<{ pod: string | undefined; namespace: string | undefined; want: RegExp | undefined }> = [
    { pod: 'enabled', namespace: undefined, want: /^pod annotation telepresence.io\/inject-traffic-agent=enabled$/ },
    { pod: 'enabled', namespace: 'enabled', want: /^pod annotation/ },
    { pod: 'enabled', namespace: 'disabled', want: /^pod annotation/ },
    { pod: undefined, namespace: 'enabled', want: /^namespace annotation telepresence.io\/inject-traffic-agent=enabled$/ },
    { pod: 'yes', namespace: 'enabled', want: /^namespace annotation/ },
    { pod: 'disabled', namespace: 'enabled', want: undefined },
    { pod: undefined, namespace: undefined, want: undefined },
    { pod: undefined, namespace: 'disabled', want: undefined },
    { pod: 'Enabled', namespace: 'true', want: undefined },
  ];
  for (const c of cases) {
    const got = preInjectionReason(c.pod, c.namespace);
    const name = `pod ${String(c.pod)}, namespace ${String(c.namespace)}`;
    if (c.want === undefined) t.equal(got, undefined, name);
    else t.match(got, c.want, name);
  }
  t.end();
});
