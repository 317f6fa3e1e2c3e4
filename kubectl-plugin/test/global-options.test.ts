import t from 'tap';
import { OUTPUT_FORMATS, globalOptions } from '../src/global-options.js';

t.test('global options are declared once, globally', (t) => {
  t.same(Object.keys(globalOptions).sort(), ['context', 'kubeconfig', 'namespace', 'output']);
  for (const [name, option] of Object.entries(globalOptions)) {
    t.equal(option.global, true, `${name} is global`);
  }
  t.end();
});

t.test('--output offers text and json, text by default', (t) => {
  t.same(OUTPUT_FORMATS, ['text', 'json']);
  t.equal(globalOptions.output.default, 'text');
  t.end();
});
