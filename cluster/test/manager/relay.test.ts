import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { EventEmitter } from 'node:events';
import t from 'tap';
import { relay } from '../../src/manager/service.js';
import { createLogger } from '../../src/shared/log.js';

/** Just enough of a server duplex stream: records writes, pauses and ends; `full` makes write() return false. */
class FakeCall extends EventEmitter {
  written: TunnelMessage[] = [];
  paused = false;
  writableEnded = false;
  full = false;
  write(m: TunnelMessage): boolean {
    if (this.writableEnded) throw new Error('write after end');
    this.written.push(m);
    return !this.full;
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

type Call = ServerDuplexStream<TunnelMessage, TunnelMessage>;
const log = createLogger('m', 'error', () => undefined);
const data = (s: string): TunnelMessage => ({ data: Buffer.from(s) });

t.test('backpressure: a full receiver pauses the sender until it drains', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  t.notOk(agent.paused, 'flowing after set-up');
  client.full = true;
  agent.emit('data', data('a'));
  t.ok(agent.paused, 'paused when the client side is full');
  client.full = false;
  client.emit('drain');
  t.notOk(agent.paused, 'resumed on drain');
  agent.emit('data', data('b'));
  t.strictSame(client.written.map((m) => m.data?.toString()), ['a', 'b']);
});

t.test('half-close: each close is passed on; the pair ends when both sides closed', async (t) => {
  const agent = new FakeCall();
  const client = new FakeCall();
  relay(agent as unknown as Call, client as unknown as Call, log, 'c');
  agent.emit('data', { close: { error: '' } });
  t.strictSame(client.written, [{ close: { error: '' } }]);
  t.notOk(agent.writableEnded || client.writableEnded, 'still open: the client may send');
  client.emit('data', data('reply'));
  t.strictSame(agent.written, [data('reply')]);
  client.emit('end');
  t.strictSame(agent.written.at(-1), { close: { error: '' } }, 'the end of a stream is a close');
  t.ok(agent.writableEnded && client.writableEnded, 'both ended');
});

t.test('an error close or a vanished side ends the pair at once', async (t) => {
  for (const how of ['error-close', 'cancelled'] as const) {
    const agent = new FakeCall();
    const client = new FakeCall();
    relay(agent as unknown as Call, client as unknown as Call, log, 'c');
    if (how === 'error-close') client.emit('data', { close: { error: 'connection refused' } });
    else client.emit('cancelled');
    t.match(agent.written.at(-1), { close: { error: how === 'error-close' ? 'connection refused' : /went away/ } }, how);
    t.ok(agent.writableEnded && client.writableEnded, `${how}: both ended`);
    agent.emit('data', data('late'));
    t.equal(client.written.length, 0, `${how}: nothing relayed after the end`);
  }
});
