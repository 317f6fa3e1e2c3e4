import t from 'tap';
import * as core from '../src/index.js';

t.test('the package entry re-exports every module', (t) => {
  t.type(core.TpError, 'function', 'errors');
  t.equal(core.AGENTS_CONFIGMAP, 'telepresence-agents', 'contracts');
  t.type(core.VERSION, 'string', 'version');
  t.end();
});
