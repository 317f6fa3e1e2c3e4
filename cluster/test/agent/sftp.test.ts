import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import t from 'tap';
import { SFTP_SERVER_PATH, startSftpServer } from '../../src/agent/sftp.js';
import { spawnPiped } from '../../src/shared/command-runner.js';
import { memoryLogger, until } from './helpers.js';

/** SSH_FXP_INIT (type 1) for SFTP version 3, framed by its uint32 length. */
const INIT = Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3]);

/** Sends `bytes` and collects what comes back until the server closes or `enough` bytes came. */
function exchange(port: number, bytes: Buffer, enough: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    const done = (): void => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (Buffer.concat(chunks).length >= enough) done();
    });
    socket.on('end', done);
    socket.on('error', reject);
  });
}

t.test('each connection talks to its own sftp-server', { skip: existsSync(SFTP_SERVER_PATH) ? false : `${SFTP_SERVER_PATH} is not installed (Debian package openssh-sftp-server)` }, async (t) => {
  const server = await startSftpServer({ spawn: spawnPiped, log: memoryLogger() });
  t.teardown(() => server.close());
  for (const round of [1, 2]) {
    const reply = await exchange(server.port, INIT, 9);
    t.equal(reply.readUInt8(4), 2, `round ${round}: SSH_FXP_VERSION`);
    t.equal(reply.readUInt32BE(5), 3, `round ${round}: version 3`);
  }
});

t.test('a missing sftp-server closes the connection and says so', async (t) => {
  const log = memoryLogger();
  const server = await startSftpServer({ spawn: spawnPiped, log, command: '/nonexistent/sftp-server' });
  t.teardown(() => server.close());
  const reply = await exchange(server.port, INIT, 9);
  t.equal(reply.length, 0, 'nothing answered');
  await until(() => log.lines.some((l) => l.level === 'warn' && /cannot run sftp-server/.test(l.msg)), 'the warning');
  t.pass('warned');
});
