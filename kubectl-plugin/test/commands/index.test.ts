import t from 'tap';
import { commands } from '../../src/commands/index.js';
import { BufferIo } from '../fixtures/buffer-io.js';

t.test('every command has an explicit, unique command string', (t) => {
  const list = commands({ io: new BufferIo(), version: '0.0.0' });
  const verbs = list.map((c) => {
    t.type(c.command, 'string');
    return String(c.command).split(' ')[0];
  });
  t.ok(verbs.includes('version'));
  t.equal(new Set(verbs).size, verbs.length);
  t.end();
});
