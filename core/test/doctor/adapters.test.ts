import t from 'tap';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processWorkstationHost } from '../../src/doctor/adapters.js';

t.test('which finds executables on PATH only; whichForRoot looks in root\'s sbin folders too', async (t) => {
  const dir = t.testdir();
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'sshfs'), '#!/bin/sh\n');
  chmodSync(join(bin, 'sshfs'), 0o755);
  writeFileSync(join(bin, 'notexec'), '');
  const host = processWorkstationHost({ PATH: bin, TELEPRESENCE_NETWORK_SOCKET: join(dir, 'none.sock') }, '/opt/tp/kubectl-telepresence.js');
  t.equal(await host.which('sshfs'), join(bin, 'sshfs'));
  t.equal(await host.which('notexec'), undefined, 'a file that cannot be executed is not a command');
  t.equal(await host.which('sh'), undefined, 'PATH is the only place which looks');
  t.equal(await host.exists(join(bin, 'sshfs')), true);
  t.equal(await host.exists(join(dir, 'nope')), false);
  t.equal(await host.networkDaemonAnswers(), false);
  t.match(host.networkDaemonCommand, /kubectl-telepresence.js network-daemon --owner \d+$/);
});
