import t from 'tap';
import { fakeEnv } from '../fixtures/fake-deps.js';
import { commands } from '../../src/commands/index.js';

t.test('every command has an explicit, unique command string', (t) => {
  const list = commands(fakeEnv().deps);
  const verbs = list.map((c) => {
    t.type(c.command, 'string');
    return String(c.command).split(' ')[0];
  });
  t.ok(verbs.includes('version'));
  t.equal(new Set(verbs).size, verbs.length);
  t.end();
});
