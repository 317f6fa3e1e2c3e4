import { Server, ServerCredentials, credentials, type ServerDuplexStream } from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { ManagerClient, ManagerService, TunnelMessage, type ManagerServer } from '../src/gen/manager/v1/manager.js';
import {
  decodeTunnelMessage,
  encodeTunnelMessage,
  RAW_TUNNEL_SERVICE,
  rawTunnelKind,
  TunnelManagerClient,
  type RawTunnelManagerServer,
} from '../src/tunnel.js';

const generated = (m: TunnelMessage): Buffer => Buffer.from(TunnelMessage.encode(m).finish());
const data = (n: number): TunnelMessage => ({ open: undefined, data: Buffer.alloc(n, n % 251), close: undefined });
// Payload sizes around each varint length boundary, and a relay's usual 64 KiB and more.
const SIZES = [0, 1, 127, 128, 16_383, 16_384, 65_536, 2_097_151, 2_097_152];

t.test('a data message encodes to the bytes the generated code writes', async (t) => {
  for (const n of SIZES) t.same(encodeTunnelMessage(data(n)), generated(data(n)), `${n} bytes`);
});

t.test('open and close encode as the generated code does', async (t) => {
  const open: TunnelMessage = { open: { sessionId: 's', connectionId: 'c', interceptId: 'i', protocol: '', destination: '', containerPort: undefined }, data: undefined, close: undefined };
  const close: TunnelMessage = { open: undefined, data: undefined, close: { error: 'refused' } };
  t.same(encodeTunnelMessage(open), generated(open));
  t.same(encodeTunnelMessage(close), generated(close));
});

t.test('decoding agrees with the generated code, and a payload is a view, not a copy', async (t) => {
  for (const n of SIZES) {
    const wire = generated(data(n));
    const got = decodeTunnelMessage(wire);
    t.strictSame(got, TunnelMessage.decode(wire), `${n} bytes`);
    if (n > 0) t.equal(got.data?.buffer, wire.buffer, `${n} bytes: the payload shares the received buffer`);
  }
  const close: TunnelMessage = { open: undefined, data: undefined, close: { error: '' } };
  t.strictSame(decodeTunnelMessage(generated(close)), TunnelMessage.decode(generated(close)));
});

t.test('only a message that is one whole data field counts as data', async (t) => {
  t.equal(rawTunnelKind(generated(data(300))), 'data');
  t.equal(rawTunnelKind(generated(data(0))), 'data');
  t.equal(rawTunnelKind(generated({ close: { error: 'x' } })), 'other');
  t.equal(rawTunnelKind(Buffer.alloc(0)), 'other', 'an empty message');
  const both = generated({ data: Buffer.from('ab'), close: { error: '' } });
  t.equal(rawTunnelKind(both), 'other', 'data followed by another field');
  t.strictSame(decodeTunnelMessage(both), TunnelMessage.decode(both), 'decoded by the generated code');
  const truncated = generated(data(300)).subarray(0, 100);
  t.equal(rawTunnelKind(truncated), 'other', 'a payload shorter than its length');
  t.throws(() => decodeTunnelMessage(truncated), 'which does not decode');
});

/** A real grpc-js server on 127.0.0.1:0 serving `impl` under `definition`; returns its address. */
async function serve(t: Test, definition: typeof ManagerService | typeof RAW_TUNNEL_SERVICE, impl: object): Promise<string> {
  const server = new Server();
  server.addService(definition, impl as ManagerServer);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  t.teardown(() => server.forceShutdown());
  return `127.0.0.1:${port}`;
}

/** Sends `messages` on a Tunnel and collects what comes back until the server ends the call. */
function exchange(client: ManagerClient, messages: TunnelMessage[]): Promise<TunnelMessage[]> {
  return new Promise((resolve, reject) => {
    const call = client.tunnel();
    const got: TunnelMessage[] = [];
    call.on('data', (m: TunnelMessage) => got.push(m));
    call.on('end', () => resolve(got));
    call.on('error', reject);
    for (const m of messages) call.write(m);
    call.end();
  });
}

const MESSAGES: TunnelMessage[] = [
  { open: { sessionId: 's', connectionId: 'c', interceptId: '', protocol: '', destination: '', containerPort: undefined }, data: undefined, close: undefined },
  data(70_000),
  data(5),
  { open: undefined, data: undefined, close: { error: '' } },
];

t.test('TunnelManagerClient talks to a server with the generated codec', async (t) => {
  const address = await serve(t, ManagerService, {
    tunnel: (call: ServerDuplexStream<TunnelMessage, TunnelMessage>) => {
      call.on('data', (m: TunnelMessage) => call.write(m));
      call.on('end', () => call.end());
    },
  });
  const client = new TunnelManagerClient(address, credentials.createInsecure());
  t.teardown(() => client.close());
  t.strictSame(await exchange(client, MESSAGES), MESSAGES);
});

t.test('a raw server passes encoded messages that both kinds of client read', async (t) => {
  const seen: Array<'data' | 'other'> = [];
  const impl: Pick<RawTunnelManagerServer, 'tunnel'> = {
    tunnel: (call) => {
      call.on('data', (m: Buffer) => {
        seen.push(rawTunnelKind(m));
        call.write(m);
      });
      call.on('end', () => call.end());
    },
  };
  const address = await serve(t, RAW_TUNNEL_SERVICE, impl);
  for (const Client of [ManagerClient, TunnelManagerClient]) {
    const client = new Client(address, credentials.createInsecure());
    t.teardown(() => client.close());
    t.strictSame(await exchange(client, MESSAGES), MESSAGES, Client === ManagerClient ? 'generated client' : 'TunnelManagerClient');
  }
  t.strictSame(seen, ['other', 'data', 'data', 'other', 'other', 'data', 'data', 'other']);
});
