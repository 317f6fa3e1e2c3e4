import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { inflateRawSync } from 'node:zlib';
import t, { type Test } from 'tap';
import type { WebSocket } from 'ws';
import { openPodStream, SPDY_TUNNEL_PROTOCOL } from '../../src/kube/pod-stream.js';
import { pendingWriteBytes } from '../../src/reused-reads.js';
import { splice, spliceSocketOptions } from '../../src/splice.js';
import { apiServer, portMessage } from '../fixtures/fake-api-server.js';
import { controlFrame, dataFrameHeader, FLAG_FIN, FrameReader, PING, SYN_REPLY, SYN_STREAM } from '../../src/kube/spdy.js';

t.test('bytes flow both ways with the channel byte and the port prefix handled', async (t) => {
  let seenPath = '';
  const kc = await apiServer(t, (ws, url) => {
    seenPath = `${url.pathname}?${url.searchParams.toString()}`;
    ws.send(portMessage(0, 4000));
    ws.send(portMessage(1, 4000));
    // An echo of the data channel, upper-cased, as the pod would answer.
    ws.on('message', (data: Buffer) => {
      t.equal(data[0], 0, 'the client writes on the data channel');
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(data.subarray(1).toString().toUpperCase())]));
    });
  });
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  t.equal(seenPath, '/api/v1/namespaces/default/pods/web-1/portforward?ports=4000');
  stream.write('hello');
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  t.equal(chunk.toString(), 'HELLO');
  stream.end();
  await once(stream, 'close');
});

t.test('an error reported on the error channel fails the stream with it', async (t) => {
  const kc = await apiServer(t, (ws) => {
    ws.send(portMessage(0, 4000));
    ws.send(portMessage(1, 4000));
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from('error forwarding port 4000: connection refused')]));
    ws.close();
  });
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  stream.resume();
  const [err] = (await once(stream, 'error').catch((e: unknown) => [e])) as [Error];
  t.match(err.message, /port-forward to default\/web-1:4000: error forwarding port 4000: connection refused/);
});

t.test('a refused upgrade is an error naming the API server message', async (t) => {
  const kc = await apiServer(t, () => undefined, { status: 403, message: 'pods "web-1" is forbidden: User "dev" cannot create resource "pods/portforward"' });
  await t.rejects(openPodStream(kc, 'default', 'web-1', 4000), /port-forward to default\/web-1:4000: 403 pods "web-1" is forbidden/);
});

// ---------------------------------------------------------------------------------------------
// SPDY through the WebSocket

interface SpdyPeer {
  /** The headers of each stream the client opened, by stream id. */
  readonly streams: Map<number, Record<string, string>>;
  readonly received: Buffer[];
}

/**
 * The pod side of a SPDY port-forward: reads the client's frames (header blocks inflated with real
 * zlib: stored blocks need no dictionary, so raw inflate after the 6-byte zlib header reads them),
 * answers each SYN_STREAM, and calls `onData` with what arrives on the data stream.
 */
function spdyPeer(t: Test, ws: WebSocket, onData: (data: Buffer, fin: boolean) => void, onControl?: (type: number, body: Buffer) => void): SpdyPeer {
  const peer: SpdyPeer = { streams: new Map(), received: [] };
  let compressed = Buffer.alloc(0);
  let inflatedBefore = 0;
  const reader = new FrameReader({
    data: (id, payload, fin) => {
      if (id === 3) onData(payload, fin);
    },
    control: (type, _flags, body) => {
      onControl?.(type, body);
      if (type !== SYN_STREAM) return;
      const id = body.readUInt32BE(0);
      // Each block continues the connection's one zlib stream.
      compressed = Buffer.concat([compressed, body.subarray(10)]);
      const all = inflateRawSync(compressed.subarray(6), { finishFlush: 2 /* Z_SYNC_FLUSH */ });
      const block = all.subarray(inflatedBefore);
      inflatedBefore = all.length;
      const headers: Record<string, string> = {};
      let at = 4;
      for (let i = 0; i < block.readUInt32BE(0); i++) {
        const nl = block.readUInt32BE(at);
        const name = block.subarray(at + 4, at + 4 + nl).toString();
        at += 4 + nl;
        const vl = block.readUInt32BE(at);
        headers[name] = block.subarray(at + 4, at + 4 + vl).toString();
        at += 4 + vl;
      }
      peer.streams.set(id, headers);
      // A SYN_REPLY with an empty (and here not even valid) header block: the client skips it.
      const reply = Buffer.alloc(4);
      reply.writeUInt32BE(id, 0);
      ws.send(controlFrame(SYN_REPLY, 0, reply));
    },
  });
  ws.on('message', (data: Buffer) => {
    peer.received.push(data);
    try {
      reader.push(data);
    } catch (err: unknown) {
      t.fail(`the client sent something that is not SPDY: ${(err as Error).message}`);
    }
  });
  return peer;
}

/** A data frame on the data stream, cut into two WebSocket messages where `cut` says. */
function dataMessages(payload: Buffer, fin = false, cut = 3): Buffer[] {
  const frame = Buffer.concat([dataFrameHeader(3, payload.length, fin ? FLAG_FIN : 0), payload]);
  return [frame.subarray(0, cut), frame.subarray(cut)];
}

t.test('over SPDY: the error and data streams are opened with the port, and bytes flow both ways', async (t) => {
  let peer: SpdyPeer | undefined;
  const kc = await apiServer(
    t,
    (ws) => {
      peer = spdyPeer(t, ws, (data) => {
        // An echo, upper-cased, as the pod would answer; frames cut across messages.
        for (const m of dataMessages(Buffer.from(data.toString().toUpperCase()))) ws.send(m);
      });
    },
    undefined,
    SPDY_TUNNEL_PROTOCOL,
  );
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  stream.write('hello');
  const [chunk] = (await once(stream, 'data')) as [Buffer];
  t.equal(chunk.toString(), 'HELLO');
  t.same(peer?.streams.get(1), { streamtype: 'error', port: '4000', requestid: '0' });
  t.same(peer?.streams.get(3), { streamtype: 'data', port: '4000', requestid: '0' });
  stream.end();
  await once(stream, 'close');
});

t.test('over SPDY: the end of the data stream ends the stream, after its bytes', async (t) => {
  const kc = await apiServer(
    t,
    (ws) => {
      spdyPeer(t, ws, () => undefined);
      for (const m of dataMessages(Buffer.from('last words'), true)) ws.send(m);
    },
    undefined,
    SPDY_TUNNEL_PROTOCOL,
  );
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  let got = '';
  stream.on('data', (c: Buffer) => (got += c.toString()));
  await once(stream, 'end');
  t.equal(got, 'last words');
});

t.test('over SPDY: a socket spliced into the stream reads into reused buffers and its bytes arrive intact', async (t) => {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let bytes = 0;
  const total = 16 * 1024 * 1024;
  let arrived = (): void => undefined;
  const all = new Promise<void>((resolve) => (arrived = resolve));
  const kc = await apiServer(
    t,
    (ws) => {
      spdyPeer(t, ws, (data) => {
        got.update(data);
        bytes += data.length;
        if (bytes >= total) arrived();
      });
    },
    undefined,
    SPDY_TUNNEL_PROTOCOL,
  );
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  t.equal(pendingWriteBytes(stream), 0, 'a pod stream tells what it still holds');
  // The daemon's upload path: a workstation connection spliced into a stream to the pod.
  const server = net.createServer({ allowHalfOpen: true, ...spliceSocketOptions });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'connection');
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [socket] = (await accepted) as [net.Socket];
  void splice(socket, stream);
  t.equal(socket.listenerCount('data'), 0, 'the socket reads into a buffer of its own');
  for (let n = 0; n < total; ) {
    const piece = randomBytes(Math.min(total - n, 1 + Math.floor(Math.random() * 300_000)));
    sent.update(piece);
    client.write(piece);
    n += piece.length;
  }
  await all;
  t.equal(bytes, total);
  t.equal(got.digest('hex'), sent.digest('hex'), 'every byte arrived, in order, unchanged');
  client.destroy();
  stream.destroy();
});

t.test('over SPDY: an error on the error stream fails the stream with it', async (t) => {
  const kc = await apiServer(
    t,
    (ws) => {
      spdyPeer(t, ws, () => undefined);
      const text = Buffer.from('error forwarding port 4000 to pod web-1: connection refused');
      ws.send(Buffer.concat([dataFrameHeader(1, text.length), text, dataFrameHeader(3, 0, FLAG_FIN), dataFrameHeader(1, 0, FLAG_FIN)]));
    },
    undefined,
    SPDY_TUNNEL_PROTOCOL,
  );
  const stream = await openPodStream(kc, 'default', 'web-1', 4000);
  stream.resume();
  const [err] = (await once(stream, 'error').catch((e: unknown) => [e])) as [Error];
  t.match(err.message, /port-forward to default\/web-1:4000: error forwarding port 4000 to pod web-1: connection refused/);
});

t.test('over SPDY: a ping is answered with itself', async (t) => {
  const pong = new Promise<Buffer>((resolve) => {
    void apiServer(
      t,
      (ws) => {
        spdyPeer(
          t,
          ws,
          () => undefined,
          (type, body) => {
            if (type === PING) resolve(body);
          },
        );
        const id = Buffer.alloc(4);
        id.writeUInt32BE(2, 0);
        ws.send(controlFrame(PING, 0, id));
      },
      undefined,
      SPDY_TUNNEL_PROTOCOL,
    ).then(async (kc) => {
      const stream = await openPodStream(kc, 'default', 'web-1', 4000);
      t.teardown(() => stream.destroy());
    });
  });
  t.equal((await pong).readUInt32BE(0), 2);
});
