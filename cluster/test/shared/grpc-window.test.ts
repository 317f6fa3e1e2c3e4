import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import t, { type Test } from 'tap';
import { CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES, widenConnectionWindow, widenServerStreamWindow } from '../../src/shared/grpc-window.js';

// A bidi method with raw-bytes messages: what the manager's Tunnel looks like on the wire.
const SERVICE = {
  pipe: {
    path: '/test.Window/Pipe',
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

async function serve(t: Test, widen: boolean): Promise<{ port: number; widenedCalls: boolean[] }> {
  const server = new Server();
  if (widen) t.ok(widenServerStreamWindow(server), 'this grpc-js has the internals the stream window needs');
  const widenedCalls: boolean[] = [];
  server.addService(SERVICE, {
    pipe: (call: ServerDuplexStream<Buffer, Buffer>) => {
      if (widen) widenedCalls.push(widenConnectionWindow(call));
      call.on('data', (b: Buffer) => call.write(b));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((ok, fail) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))));
  t.teardown(() => server.forceShutdown());
  return { port, widenedCalls };
}

/** A raw HTTP/2 client (so the test can read the settings and windows the server advertises). */
async function rawClient(t: Test, port: number): Promise<ClientHttp2Session> {
  const session = connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.destroy());
  await new Promise<void>((ok) => session.once('remoteSettings', () => ok()));
  return session;
}

/** One call of the method; resolves once the echo of `body` came back. */
function call(session: ClientHttp2Session, body: Buffer): Promise<void> {
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const stream = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: SERVICE.pipe.path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  return new Promise((ok, fail) => {
    stream.on('data', () => ok());
    stream.on('error', fail);
    stream.write(frame);
  });
}

t.test('the server advertises the wide stream window and widens each connection once', async (t) => {
  const { port, widenedCalls } = await serve(t, true);
  const session = await rawClient(t, port);
  t.equal(session.remoteSettings.initialWindowSize, STREAM_WINDOW_BYTES, 'initial stream window in SETTINGS');
  await call(session, Buffer.from('one'));
  await call(session, Buffer.from('two'));
  t.strictSame(widenedCalls, [true, true], 'every call exposed its connection');
  // The connection window the server granted us: its widened receive window less what is in flight.
  t.ok((session.state.remoteWindowSize ?? 0) > CONNECTION_WINDOW_BYTES - 1024, `connection window ${String(session.state.remoteWindowSize)}`);
});

t.test('without widening, HTTP/2 defaults apply (the test can tell the difference)', async (t) => {
  const { port } = await serve(t, false);
  const session = await rawClient(t, port);
  t.equal(session.remoteSettings.initialWindowSize, 65_535, 'the default stream window');
  await call(session, Buffer.from('one'));
  t.ok((session.state.remoteWindowSize ?? 0) <= 65_535, 'the default connection window');
});

t.test('a call without the expected internals is reported, not thrown on', (t) => {
  t.equal(widenConnectionWindow({}), false);
  t.end();
});
