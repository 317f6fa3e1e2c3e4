import { Metadata, Server, ServerCredentials, credentials, status, type ServiceError } from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import {
  Empty,
  ManagerClient,
  ManagerService,
  VersionInfo,
  type ManagerServer,
} from '../../../../src/gen/manager/v1/manager.js';

/**
 * Starts a real grpc-js server on 127.0.0.1:0 with `impl`; returns a connected client. These
 * tests exercise the generated code, not the manager, so methods they do not call are absent
 * (grpc-js answers UNIMPLEMENTED for them).
 */
async function serve(t: Test, impl: Partial<ManagerServer>): Promise<ManagerClient> {
  const server = new Server();
  server.addService(ManagerService, impl as ManagerServer);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  const client = new ManagerClient(`127.0.0.1:${port}`, credentials.createInsecure());
  t.teardown(() => {
    client.close();
    server.forceShutdown();
  });
  return client;
}

function version(client: ManagerClient): Promise<VersionInfo> {
  return new Promise((resolve, reject) => {
    // A deadline, so a broken server fails the test instead of hanging it.
    client.version({}, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

t.test('Version round-trips through a real server', async (t) => {
  let calls = 0;
  const client = await serve(t, {
    version: (_call, callback) => {
      calls++;
      callback(null, { version: '1.2.3', name: 'traffic-manager', agentImage: 'tp-local/traffic-agent:1.2.3' });
    },
  });
  t.strictSame(await version(client), { version: '1.2.3', name: 'traffic-manager', agentImage: 'tp-local/traffic-agent:1.2.3' });
  t.equal(calls, 1);
});

t.test('a server error arrives as its status code', async (t) => {
  const client = await serve(t, {
    version: (_call, callback) => {
      callback({ code: status.FAILED_PRECONDITION, details: 'not ready' });
    },
  });
  const err = (await version(client).then(
    () => t.fail('should fail'),
    (e: unknown) => e,
  )) as ServiceError;
  t.equal(err.code, status.FAILED_PRECONDITION);
  t.equal(err.details, 'not ready');
});

t.test('messages encode and decode', (t) => {
  const info = VersionInfo.fromPartial({ version: '0.1.0' });
  t.strictSame(info, { version: '0.1.0', name: '', agentImage: '' }, 'fromPartial fills defaults');
  t.strictSame(VersionInfo.decode(VersionInfo.encode(info).finish()), info);
  t.equal(Empty.encode({}).finish().length, 0, 'Empty is empty on the wire');
  t.strictSame(VersionInfo.toJSON(info), { version: '0.1.0' }, 'JSON omits defaults');
  t.end();
});
