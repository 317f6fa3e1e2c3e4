import t from 'tap';
import { showVersion, versionMessage } from '../src/show-version.js';
import { FakeHost } from './fixtures/fake-host.js';

t.test('showVersion shows one information message with the version', (t) => {
  const host = new FakeHost();
  showVersion(host, '1.2.3');
  t.same(host.messages, [{ level: 'info', text: 'Telepresence client v1.2.3' }]);
  t.equal(versionMessage('0.1.0'), 'Telepresence client v0.1.0');
  t.end();
});
