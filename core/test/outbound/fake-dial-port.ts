/**
 * A traffic-manager's dial port as manager.proto describes it ("Outbound fast path"), on
 * 127.0.0.1:0: the parked frame on accept, then a header, a dial, the answer, and a splice.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Test } from 'tap';
import { DIAL_PORT_PARKED } from '../../src/contracts.js';
import { DirectStream, parseHeader, type DirectHello } from '../../src/direct-stream.js';
import { splice } from '../../src/splice.js';

/** A destination the fake answers with an "unreachable:" error without dialling. */
export const FAKE_UNREACHABLE = '192.0.2.1:80';

export interface FakeDialPort {
  readonly port: number;
  /** Headers received, in order. */
  readonly headers: Record<string, unknown>[];
  /** Connections accepted (parked or in use) and still open. */
  readonly sockets: Set<Socket>;
  /** Opens a stream to the fake, as `kube.openPodStream` would to the manager pod. */
  open(): Promise<Duplex>;
  /** The manager goes away: every stream is cut, and new ones are refused. */
  kill(): Promise<void>;
}

function frame(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

export async function fakeDialPort(t: Test, opts: { silent?: boolean } = {}): Promise<FakeDialPort> {
  const headers: Record<string, unknown>[] = [];
  const sockets = new Set<Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (opts.silent === true) return;
    socket.write(frame(DIAL_PORT_PARKED));
    const stream = new DirectStream(socket);
    stream.on('error', () => undefined);
    stream.header.then(
      (bytes) => {
        const header = parseHeader(bytes);
        headers.push(header);
        let answered = false;
        const answer = (value: Record<string, unknown>): void => {
          answered = true;
          stream.sendHeader(value as unknown as DirectHello);
        };
        const destination = String(header.destination);
        if (destination === FAKE_UNREACHABLE) {
          answer({ error: `unreachable: EHOSTUNREACH ${destination}` });
          socket.end();
          return;
        }
        const m = /^(.+):(\d+)$/.exec(destination);
        const dial = net.connect({ host: m?.[1] ?? '', port: Number(m?.[2]), allowHalfOpen: true });
        dial.once('connect', () => {
          answer({ ok: true });
          void splice(stream, dial);
        });
        dial.once('error', (err: NodeJS.ErrnoException) => {
          if (!answered) {
            answer({ error: `${err.code === 'ECONNREFUSED' ? 'refused' : 'unreachable'}: ${destination}` });
            socket.end();
          }
        });
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const kill = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  t.teardown(kill);
  return {
    port,
    headers,
    sockets,
    kill,
    open: () =>
      new Promise<Duplex>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      }),
  };
}
