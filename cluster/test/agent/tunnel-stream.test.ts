import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { EventEmitter, once } from 'node:events';
import t from 'tap';
import { TunnelError, TunnelStream, type TunnelCall } from '../../src/agent/tunnel-stream.js';
import { until } from './helpers.js';

/** A gRPC call stand-in: records what the tunnel writes; the test plays the manager's side. */
class FakeCall extends EventEmitter implements TunnelCall {
  readonly sent: TunnelMessage[] = [];
  ended = false;
  cancelled = false;
  paused = false;
  /** What write() answers: false says the buffer is full until 'drain'. */
  room = true;

  write(msg: TunnelMessage): boolean {
    this.sent.push(msg);
    return this.room;
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
}

const OPEN = { sessionId: 'agent-1', connectionId: 'c-1', interceptId: 'client-1:echo', protocol: '', destination: '' };

function readAll(stream: TunnelStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

t.test('opens with `open`, sends data, half-closes with `close`, ends the call only after both closes', async (t) => {
  const call = new FakeCall();
  const tunnel = new TunnelStream(call, OPEN);
  const closed = once(tunnel, 'close');
  t.strictSame(call.sent, [{ open: OPEN }], 'open is the first message');
  tunnel.write(Buffer.from('ping'));
  tunnel.end();
  await once(tunnel, 'finish');
  t.strictSame(call.sent.slice(1), [{ data: Buffer.from('ping') }, { close: { error: '' } }]);
  t.notOk(call.ended, 'the call stays open while the peer may still answer');

  const reading = readAll(tunnel);
  call.emit('data', { data: Buffer.from('pong') });
  call.emit('data', { close: { error: '' } });
  t.equal(await reading, 'pong', 'the answer, then EOF');
  t.ok(call.ended, 'both sides closed: the call is ended');
  call.emit('end');
  await closed;
  t.notOk(call.cancelled, 'a clean end is not a cancel');
});

t.test('the peer closing first leaves the writing side open', async (t) => {
  const call = new FakeCall();
  const tunnel = new TunnelStream(call, OPEN);
  const reading = readAll(tunnel);
  call.emit('data', { data: Buffer.from('banner') });
  call.emit('data', { close: { error: '' } });
  t.equal(await reading, 'banner');
  t.notOk(call.ended);
  tunnel.end('late reply');
  await once(tunnel, 'finish');
  t.strictSame(call.sent.slice(1), [{ data: Buffer.from('late reply') }, { close: { error: '' } }]);
  t.ok(call.ended);
});

t.test('failures destroy the stream and cancel the call', async (t) => {
  const cases: ReadonlyArray<{ name: string; fail: (call: FakeCall) => void; error: RegExp }> = [
    { name: 'a close with an error', fail: (c) => c.emit('data', { close: { error: 'dial tcp 127.0.0.1:8080: connection refused' } }), error: /other end failed the connection: dial tcp/ },
    { name: 'the call ending before the closes', fail: (c) => c.emit('end'), error: /ended the tunnel before the other end closed/ },
    { name: 'the call failing', fail: (c) => c.emit('error', new Error('UNAVAILABLE')), error: /UNAVAILABLE/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const call = new FakeCall();
      const tunnel = new TunnelStream(call, OPEN);
      const failed = once(tunnel, 'error');
      c.fail(call);
      const [err] = (await failed) as [Error];
      t.match(err.message, c.error);
      if (c.name !== 'the call failing') t.type(err, TunnelError);
      t.ok(tunnel.destroyed);
      t.ok(call.cancelled, 'the call is cancelled');
    });
  }
});

t.test('the pair ending after the peer\'s close delivers what was received, then closes cleanly', async (t) => {
  const call = new FakeCall();
  const tunnel = new TunnelStream(call, OPEN);
  const closed = once(tunnel, 'close');
  let failed: Error | undefined;
  tunnel.on('error', (err: Error) => (failed = err));
  call.emit('data', { data: Buffer.from('last words') });
  call.emit('data', { close: { error: '' } });
  call.emit('end');
  t.equal(await readAll(tunnel), 'last words');
  await closed;
  t.equal(failed, undefined, 'no error');
});

t.test('destroying the stream early cancels the call', async (t) => {
  const call = new FakeCall();
  const tunnel = new TunnelStream(call, OPEN);
  tunnel.destroy();
  await once(tunnel, 'close');
  t.ok(call.cancelled);
});

t.test('backpressure: a full call holds writes until drain; a full reader pauses the call', async (t) => {
  const call = new FakeCall();
  const tunnel = new TunnelStream(call, OPEN);
  call.room = false;
  let written = false;
  tunnel.write(Buffer.from('a'), () => (written = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(written, 'the write waits');
  call.room = true;
  call.emit('drain');
  await until(() => written, 'write completes after drain');
  t.ok(written);

  // Nobody reads: past the high-water mark the call is paused; reading resumes it.
  for (let i = 0; i < 8; i++) call.emit('data', { data: Buffer.alloc(4096) });
  t.ok(call.paused, 'paused while the reader is full');
  tunnel.resume();
  await until(() => !call.paused, 'resumed once read');
  t.notOk(call.paused);
  tunnel.destroy();
});
