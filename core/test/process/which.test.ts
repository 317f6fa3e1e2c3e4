import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { executableIn, findExecutable, pathDirs } from '../../src/process/which.js';

t.test('findExecutable searches PATH as a shell does, and takes paths as they are', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tp-which-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const [a, b] = [join(root, 'a'), join(root, 'b')];
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'tool'), 'not executable');
  writeFileSync(join(b, 'tool'), '#!/bin/sh\n');
  chmodSync(join(b, 'tool'), 0o755);
  const env = { PATH: `${a}::${b}` };
  t.strictSame(pathDirs(env), [a, b], 'empty entries dropped');
  t.equal(findExecutable('tool', env, '/'), join(b, 'tool'), 'the first executable one: a file without x is skipped');
  t.equal(findExecutable('missing', env, '/'), undefined);
  t.equal(findExecutable('./b/tool', {}, root), join(b, 'tool'), 'a relative path is taken from cwd, not PATH');
  t.equal(findExecutable(join(a, 'tool'), env, '/'), undefined, 'a path to a file that cannot be run');
  t.equal(findExecutable('', env, '/'), undefined);
  t.equal(executableIn([a], 'tool'), undefined);
});
