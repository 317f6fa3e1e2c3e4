/**
 * One port-forward stream to a pod's port as a Node Duplex, over a WebSocket to the API server in
 * one of two protocols, whichever the API server takes:
 * - `SPDY/3.1+portforward.k8s.io` (Kubernetes 1.30 and later, as kubectl does): the WebSocket
 *   carries SPDY (spdy.ts), which the API server passes on to the kubelet and the container
 *   runtime. The cheaper of the two for the runtime, and the one that multiplexes: the streams to
 *   one pod's port share one connection (spdy-mux.ts), each a pair of SPDY streams (errors, data). A
 *   connection is opened when the pod has none that is live, and closed once it has had no
 *   streams for `IDLE_CLOSE_MS`.
 * - `v4.channel.k8s.io`, served by the container runtime itself: each binary message starts with
 *   its channel, 0 for data and 1 for errors, and the first message on each channel carries only
 *   the port number. One connection per stream: the protocol has no streams.
 *
 * client-node's PortForward wants a local TCP socket to pipe and has no backpressure either way;
 * every port-forward of ours carries bulk data (direct tunnels, core/src/daemon/direct.ts; the
 * manager's session with its relayed tunnels and the sshfs mounts, through the local ports of
 * client-node-kube-api.ts), so they get this: the socket of the WebSocket is paused while our
 * reader is full (over SPDY: while a reader is more than its allowance behind, see spdy-mux.ts),
 * a write waits while more than a window of data is queued for the API server, and received
 * bytes are passed on without copies (ws-client.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type https from 'node:https';
import { Duplex } from 'node:stream';
import { TpError } from '../errors.js';
import { SpdyConnection } from './spdy-mux.js';
import { connectWebSocket, type WsConnection, WsRefusedError } from './ws-client.js';

/** The subprotocols we offer, the one we prefer first. */
export const SPDY_TUNNEL_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';
export const CHANNEL_PROTOCOL = 'v4.channel.k8s.io';

const DATA = 0;
const ERROR = 1;
/** Bytes queued for the API server above which a write waits for them to drain. */
const WRITE_WINDOW_BYTES = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a pod's SPDY connection without streams stays open for the next one. */
export const IDLE_CLOSE_MS = 5_000;

/** A stream of the v4 channel protocol: the whole WebSocket is the stream. */
class ChannelStream extends Duplex {
  readonly #ws: WsConnection;
  /** Whether the channel's first message (the port number) has been seen. */
  readonly #sawPort = [false, false];
  /** The channel of the message being received, and its port bytes still to skip. */
  #channel = -1;
  #skip = 0;
  #error = '';

  constructor(ws: WsConnection, what: string) {
    super({ allowHalfOpen: false });
    this.#ws = ws;
    ws.on('data', (piece: Buffer, start: boolean) => this.#receiveChannel(piece, start));
    ws.on('close', () => {
      if (this.#error !== '') this.destroy(new TpError('cluster', 'port-forward-failed', `${what}: ${this.#error.trim()}`));
      else this.push(null);
    });
    ws.on('error', (err: Error) => this.destroy(new TpError('cluster', 'port-forward-failed', `${what}: ${err.message}`, { cause: err })));
    ws.start();
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
    let called = false;
    const done = (err?: Error | null): void => {
      if (!called) {
        called = true;
        callback(err);
      }
    };
    // One message per write: the channel byte, then the bytes as they are.
    this.#ws.send([Buffer.from([DATA]), ...chunks], (err) => done(err));
    if (this.#ws.bufferedAmount < WRITE_WINDOW_BYTES) done();
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

export interface PodStreamOptions {
  /** How long a pod's SPDY connection without streams stays open (for the connection this opens). */
  readonly idleCloseMs?: number;
}

/** The SPDY connections of one kubeconfig's pods: the live one of each pod's port, and the ones being opened. */
interface PodConnections {
  readonly live: Map<string, SpdyConnection>;
  readonly connecting: Map<string, Promise<SpdyConnection | WsConnection>>;
  /** Pods whose API server took the v4 channels: each stream opens its own connection. */
  readonly channelOnly: Set<string>;
}

/**
 * Each kubeconfig's connections, held as long as the kubeconfig is (the adapter that owns it,
 * client-node-kube-api.ts): callers open streams with a kubeconfig and nothing more, and streams
 * opened with another kubeconfig (other credentials) never share a connection.
 */
const byConfig = new WeakMap<KubeConfig, PodConnections>();

/** Opens a stream to `pod`'s `port` through the API server of `kc`'s current cluster. */
export async function openPodStream(kc: KubeConfig, namespace: string, pod: string, port: number, options: PodStreamOptions = {}): Promise<Duplex> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new TpError('config', 'bad-kubeconfig', 'the kubeconfig has no current cluster', { hint: 'check --context and the kubeconfig' });
  }
  let pods = byConfig.get(kc);
  if (pods === undefined) {
    pods = { live: new Map(), connecting: new Map(), channelOnly: new Set() };
    byConfig.set(kc, pods);
  }
  const { live, connecting, channelOnly } = pods;
  const what = `port-forward to ${namespace}/${pod}`;
  // The context may be switched on the same kubeconfig: its cluster and user are part of the key.
  // So is the port: the connection's URL names one (`ports`), which the API server may hold the
  // streams to, even though each SPDY pair names its own.
  const key = JSON.stringify([cluster.server, kc.getCurrentUser()?.name ?? '', namespace, pod, port]);
  for (;;) {
    const conn = live.get(key);
    if (conn?.usable === true) return conn.openStream(port);
    if (channelOnly.has(key)) return new ChannelStream(await connect(kc, cluster.server, namespace, pod, port), `${what}:${port}`);
    const pending = connecting.get(key);
    if (pending !== undefined) {
      // Another stream is opening the pod's connection: share it (or fail with it).
      const got = await pending;
      if (!(got instanceof SpdyConnection)) channelOnly.add(key);
      continue;
    }
    const opening = connect(kc, cluster.server, namespace, pod, port).then((ws): SpdyConnection | WsConnection => {
      if (ws.protocol !== SPDY_TUNNEL_PROTOCOL) return ws;
      const opened: SpdyConnection = new SpdyConnection(ws, {
        what,
        idleCloseMs: options.idleCloseMs ?? IDLE_CLOSE_MS,
        onRetired: () => {
          if (live.get(key) === opened) live.delete(key);
        },
      });
      live.set(key, opened);
      return opened;
    });
    connecting.set(key, opening);
    let got: SpdyConnection | WsConnection;
    try {
      got = await opening;
    } finally {
      connecting.delete(key);
    }
    if (got instanceof SpdyConnection) {
      // Usable unless it went away at once; then the next turn opens another.
      if (got.usable) return got.openStream(port);
      continue;
    }
    channelOnly.add(key);
    return new ChannelStream(got, `${what}:${port}`);
  }
}

/** A WebSocket to the API server's port-forward of `pod` (its URL names `port`; SPDY streams name theirs). */
async function connect(kc: KubeConfig, server: string, namespace: string, pod: string, port: number): Promise<WsConnection> {
  const what = `port-forward to ${namespace}/${pod}:${port}`;
  const url = new URL(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/portforward`, server);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('ports', String(port));
  const requestOptions: https.RequestOptions = {};
  // Certificates, token and TLS settings of the context, as for every other API call.
  await kc.applyToHTTPSOptions(requestOptions);
  try {
    return await connectWebSocket(url, { requestOptions, protocols: [SPDY_TUNNEL_PROTOCOL, CHANNEL_PROTOCOL], timeoutMs: HANDSHAKE_TIMEOUT_MS });
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
}
