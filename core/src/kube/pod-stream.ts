/**
 * One port-forward stream to a pod's port as a Node Duplex, over a WebSocket to the API server in
 * one of two protocols, whichever the API server takes:
 * - `SPDY/3.1+portforward.k8s.io` (Kubernetes 1.30 and later, as kubectl does): the WebSocket
 *   carries SPDY (spdy.ts), which the API server passes on to the kubelet and the container
 *   runtime; one stream for errors, one for data. The cheaper of the two for the runtime.
 * - `v4.channel.k8s.io`, served by the container runtime itself: each binary message starts with
 *   its channel, 0 for data and 1 for errors, and the first message on each channel carries only
 *   the port number.
 *
 * client-node's PortForward wants a local TCP socket to pipe and has no backpressure either way;
 * every port-forward of ours carries bulk data (direct tunnels, core/src/daemon/direct.ts; the
 * manager's session with its relayed tunnels and the sshfs mounts, through the local ports of
 * client-node-kube-api.ts), so they get this: the socket of the WebSocket is paused while our
 * reader is full, a write waits while more than a window of data is queued for the API server,
 * and received bytes are passed on without copies (ws-client.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type https from 'node:https';
import { Duplex } from 'node:stream';
import { TpError } from '../errors.js';
import { connectWebSocket, type WsConnection, WsRefusedError } from './ws-client.js';
import { controlFrame, dataFrameHeader, FLAG_FIN, FrameReader, GOAWAY, HeaderBlockEncoder, MAX_FRAME_PAYLOAD, PING, RST_STREAM, synStreamFrame } from './spdy.js';

/** The subprotocols we offer, the one we prefer first. */
export const SPDY_TUNNEL_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';
export const CHANNEL_PROTOCOL = 'v4.channel.k8s.io';

const DATA = 0;
const ERROR = 1;
/** Our SPDY streams (client streams have odd ids): the error stream comes first, as kubectl's. */
const SPDY_ERROR_STREAM = 1;
const SPDY_DATA_STREAM = 3;
/** Bytes queued for the API server above which a write waits for them to drain. */
const WRITE_WINDOW_BYTES = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;

class PodStream extends Duplex {
  readonly #ws: WsConnection;
  readonly #what: string;
  readonly #port: number;
  /** The SPDY reader when the API server took the SPDY tunnel; undefined for v4 channels. */
  readonly #spdy: FrameReader | undefined;
  /** Whether the channel's first message (the port number) has been seen (v4 channels). */
  readonly #sawPort = [false, false];
  /** v4 channels: the channel of the message being received, and its port bytes still to skip. */
  #channel = -1;
  #skip = 0;
  #error = '';
  /** The data stream ended (its FIN, or a GOAWAY): a SPDY peer that sends more is not heard. */
  #ended = false;

  constructor(ws: WsConnection, what: string, port: number) {
    super({ allowHalfOpen: false });
    this.#ws = ws;
    this.#what = what;
    this.#port = port;
    if (ws.protocol === SPDY_TUNNEL_PROTOCOL) {
      const reader = new FrameReader({
        data: (streamId, payload, fin) => this.#spdyData(streamId, payload, fin),
        control: (type, flags, body) => this.#spdyControl(type, flags, body),
      });
      this.#spdy = reader;
      ws.on('data', (piece: Buffer) => this.#receiveSpdy(reader, piece));
      this.#openSpdyStreams();
    } else {
      ws.on('data', (piece: Buffer, start: boolean) => this.#receiveChannel(piece, start));
    }
    ws.on('close', () => {
      try {
        // A SPDY frame cut by the end of the tunnel is lost data, not a clean end.
        this.#spdy?.end();
      } catch (err: unknown) {
        this.#error ||= (err as Error).message;
      }
      if (this.#error !== '') this.destroy(this.#failure());
      else this.push(null);
    });
    ws.on('error', (err: Error) => this.destroy(new TpError('cluster', 'port-forward-failed', `${what}: ${err.message}`, { cause: err })));
    ws.start();
  }

  #failure(): TpError {
    return new TpError('cluster', 'port-forward-failed', `${this.#what}: ${this.#error.trim()}`);
  }

  /** Opens the error stream (closed at once on our side: we never write to it) and the data stream. */
  #openSpdyStreams(): void {
    const headers = new HeaderBlockEncoder();
    const common = [
      ['port', String(this.#port)],
      ['requestid', '0'],
    ] as const;
    this.#ws.send(
      Buffer.concat([
        synStreamFrame(SPDY_ERROR_STREAM, headers.encode([['streamtype', 'error'], ...common])),
        dataFrameHeader(SPDY_ERROR_STREAM, 0, FLAG_FIN),
        synStreamFrame(SPDY_DATA_STREAM, headers.encode([['streamtype', 'data'], ...common])),
      ]),
    );
  }

  #receiveSpdy(reader: FrameReader, data: Buffer): void {
    try {
      reader.push(data);
    } catch (err: unknown) {
      this.destroy(new TpError('cluster', 'port-forward-failed', `${this.#what}: ${(err as Error).message}`, { cause: err }));
    }
  }

  #spdyData(streamId: number, payload: Buffer, fin: boolean): void {
    if (streamId === SPDY_DATA_STREAM) {
      if (this.#ended) return;
      if (payload.length > 0 && !this.push(payload)) this.#ws.pause();
      // The pod's side ended; a failed dial inside the pod is reported on the error stream first.
      if (fin) this.#end();
    } else if (streamId === SPDY_ERROR_STREAM) {
      this.#error += payload.toString('utf8');
      if (fin && this.#error !== '') this.destroy(this.#failure());
    }
  }

  #spdyControl(type: number, flags: number, body: Buffer): void {
    if (type === PING) {
      this.#ws.send(controlFrame(PING, flags, body));
    } else if (type === RST_STREAM && body.length >= 8 && body.readUInt32BE(0) === SPDY_DATA_STREAM) {
      this.#error ||= `the port-forward stream was reset (SPDY status ${body.readUInt32BE(4)})`;
      this.destroy(this.#failure());
    } else if (type === GOAWAY) {
      this.#end();
    }
    // SYN_REPLY, SETTINGS, WINDOW_UPDATE, HEADERS: nothing a port-forward needs from them.
  }

  #end(): void {
    this.#ended = true;
    if (this.#error !== '') this.destroy(this.#failure());
    else this.push(null);
  }

  #receiveChannel(piece: Buffer, start: boolean): void {
    let payload = piece;
    if (start) {
      // Each message starts with its channel; the first message of a channel then has the port.
      this.#channel = payload[0] ?? -1;
      payload = payload.subarray(1);
      this.#skip = 0;
      if ((this.#channel === DATA || this.#channel === ERROR) && !this.#sawPort[this.#channel]) {
        this.#sawPort[this.#channel] = true;
        this.#skip = 2;
      }
    }
    if (this.#skip > 0) {
      const skipped = Math.min(this.#skip, payload.length);
      this.#skip -= skipped;
      payload = payload.subarray(skipped);
    }
    if (payload.length === 0) return;
    if (this.#channel === DATA) {
      if (!this.push(payload)) this.#ws.pause();
    } else if (this.#channel === ERROR) {
      // The API server reports a failed dial inside the pod here, then closes.
      this.#error += payload.toString('utf8');
    }
  }

  override _read(): void {
    this.#ws.resume();
  }

  #send(chunks: readonly Buffer[], callback: (error?: Error | null) => void): void {
    const size = chunks.reduce((n, c) => n + c.length, 0);
    let called = false;
    const done = (err?: Error | null): void => {
      if (!called) {
        called = true;
        callback(err);
      }
    };
    if (this.#spdy !== undefined && size > MAX_FRAME_PAYLOAD) {
      // Rare (a huge writev): one frame per chunk, each cut to what a frame holds.
      const pieces = chunks.flatMap((c) => Array.from({ length: Math.ceil(c.length / MAX_FRAME_PAYLOAD) }, (_, i) => c.subarray(i * MAX_FRAME_PAYLOAD, (i + 1) * MAX_FRAME_PAYLOAD)));
      const last = pieces.pop() ?? Buffer.alloc(0);
      for (const p of pieces) this.#ws.send(this.#frame([p], p.length));
      this.#ws.send(this.#frame([last], last.length), (err) => done(err));
    } else {
      // One message per write: its frame header, then its bytes as they are.
      this.#ws.send(this.#frame(chunks, size), (err) => done(err));
    }
    if (this.#ws.bufferedAmount < WRITE_WINDOW_BYTES) done();
  }

  /** `chunks` (`size` bytes) behind the data frame's header of the protocol in use. */
  #frame(chunks: readonly Buffer[], size: number): Buffer[] {
    const head = this.#spdy !== undefined ? dataFrameHeader(SPDY_DATA_STREAM, size) : Buffer.from([DATA]);
    return [head, ...chunks];
  }

  /**
   * Bytes written that may still be referred to rather than sent (`pendingWriteBytes` in
   * reused-reads.ts): ours not yet handed on, and the WebSocket's socket's queue, where the
   * bytes of our frames wait as they were given (its own bytes count too, which is safe).
   */
  get pendingWriteBytes(): number {
    return this.writableLength + this.#ws.bufferedAmount;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#send(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The protocol has no half-close: the end of our data is the end of the stream.
    this.#ws.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#ws.terminate();
    callback(error);
  }
}

/** Opens a stream to `pod`'s `port` through the API server of `kc`'s current cluster. */
export async function openPodStream(kc: KubeConfig, namespace: string, pod: string, port: number): Promise<Duplex> {
  const what = `port-forward to ${namespace}/${pod}:${port}`;
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new TpError('config', 'bad-kubeconfig', 'the kubeconfig has no current cluster', { hint: 'check --context and the kubeconfig' });
  }
  const url = new URL(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/portforward`, cluster.server);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('ports', String(port));
  const requestOptions: https.RequestOptions = {};
  // Certificates, token and TLS settings of the context, as for every other API call.
  await kc.applyToHTTPSOptions(requestOptions);
  let ws: WsConnection;
  try {
    ws = await connectWebSocket(url, { requestOptions, protocols: [SPDY_TUNNEL_PROTOCOL, CHANNEL_PROTOCOL], timeoutMs: HANDSHAKE_TIMEOUT_MS });
  } catch (err: unknown) {
    if (err instanceof WsRefusedError) {
      // A refusal (403 without pods/portforward, 404 for a pod that is gone) comes as a Status.
      let message = err.body.trim();
      try {
        message = (JSON.parse(err.body) as { message?: string }).message ?? message;
      } catch {
        // Not a Status: the body as it is.
      }
      throw new TpError('cluster', 'port-forward-failed', `${what}: ${err.statusCode} ${message}`);
    }
    throw new TpError('cluster', 'port-forward-failed', `${what}: ${(err as Error).message}`, { cause: err });
  }
  return new PodStream(ws, what, port);
}
