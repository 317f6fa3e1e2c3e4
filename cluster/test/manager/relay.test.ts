import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { decodeTunnelMessage, encodeTunnelMessage } from '@telepresence-ts/proto/manager/v1/tunnel';
import { EventEmitter } from 'node:events';
import t from 'tap';
import { relay } from '../../src/manager/service.js';
import { createLogger } from '../../src/shared/log.js';

/**
 * Just enough of a server duplex stream of encoded messages: records writes (decoded, and the
 * Buffers as written), pauses and ends; `full` makes write() return false. `send` emits a
 * message as the manager receives it, encoded.
 */
class FakeCall extends EventEmitter {
  written: TunnelMessage[] = [];
  raw: Buffer[] = [];
  paused = false;
  writableEnded = false;
  full = false;
  write(m: Buffer): boolean {
    if (this.writableEnded) throw new Error('write after end');
    this.raw.push(m);
    this.written.push(decodeTunnelMessage(m));
    return !this.full;
  }
  send(m: TunnelMessage): void {
    this.emit('data', encodeTunnelMessage(m));
  }
  end(): void {
    this.writableEnded = true;
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

type Call = ServerDuplexStream<Buffer, Buffer>;
const log = createLogger('m', 'error', () => undefined);
const data = (s: string): TunnelMessage => ({ open: undefined, data: Buffer.from(s), close: undefined });
const close = (error: string): TunnelMessage => ({ open: undefined, data: undefined, close: { error } });

t.test('backpressure: a full receiver pauses the sender until it drains', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  t.notOk(agent.paused, 'flowing after set-up');
  client.full = true;
  agent.send(data('a'));
  t.ok(agent.paused, 'paused when the client side is full');
  client.full = false;
  client.emit('drain');
  t.notOk(agent.paused, 'resumed on drain');
  agent.send(data('b'));
  t.strictSame(client.written.map((m) => m.data?.toString()), ['a', 'b']);
});

t.test('half-close: each close is passed on; the pair ends when both sides closed', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  agent.send(close(''));
  t.strictSame(client.written, [close('')]);
  t.notOk(agent.writableEnded || client.writableEnded, 'still open: the client may send');
  client.send(data('reply'));
  t.strictSame(agent.written, [data('reply')]);
  client.emit('end');
  t.strictSame(agent.written.at(-1), close(''), 'the end of a stream is a close');
  t.ok(agent.writableEnded && client.writableEnded, 'both ended');
});

t.test('an error close or a vanished side ends the pair at once', async (t) => {
  for (const how of ['error-close', 'cancelled'] as const) {
    const agent = new FakeCall();
    const client = new FakeCall();
    relay(agent as unknown as Call, client as unknown as Call, log, 'c');
    if (how === 'error-close') client.send(close('connection refused'));
    else client.emit('cancelled');
    t.match(agent.written.at(-1), { close: { error: how === 'error-close' ? 'connection refused' : /went away/ } }, how);
    t.ok(agent.writableEnded && client.writableEnded, `${how}: both ended`);
    agent.send(data('late'));
    t.equal(client.written.length, 0, `${how}: nothing relayed after the end`);
  }
});

t.test('data passes on as the very Buffer that came in, unread', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  const sent = encodeTunnelMessage(data('x'.repeat(70_000)));
  agent.emit('data', sent);
  t.equal(client.raw[0], sent, 'the same Buffer, not a copy');
});

t.test('a message that is not a tunnel message fails the pair', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  agent.emit('data', Buffer.from([0x1a, 0x05, 0x0a]));
  t.match(client.written.at(-1), { close: { error: /not a tunnel message/ } });
  t.ok(agent.writableEnded && client.writableEnded, 'both ended');
});
