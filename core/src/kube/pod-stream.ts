/**
 * One port-forward stream to a pod's port as a Node Duplex, over the API server's WebSocket
 * port-forward protocol (`v4.channel.k8s.io`): each binary message starts with its channel, 0 for
 * data and 1 for errors, and the first message on each channel carries only the port number.
 *
 * client-node's PortForward wants a local TCP socket to pipe and has no backpressure either way;
 * the daemon's direct tunnels (core/src/daemon/direct.ts) carry bulk data, so they get this:
 * the socket of the WebSocket is paused while our reader is full, and a write waits while more
 * than a window of data is queued for the API server.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TpError } from '../errors.js';

const DATA = 0;
const ERROR = 1;
/** Bytes queued for the API server above which a write waits for them to drain. */
const WRITE_WINDOW_BYTES = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;

class PodStream extends Duplex {
  readonly #ws: WebSocket;
  readonly #what: string;
  /** Whether the channel's first message (the port number) has been seen. */
  readonly #sawPort = [false, false];
  #error = '';

  constructor(ws: WebSocket, what: string) {
    super({ allowHalfOpen: false });
    this.#ws = ws;
    this.#what = what;
    ws.on('message', (data: Buffer) => this.#receive(data));
    ws.on('close', () => {
      if (this.#error !== '') this.destroy(this.#failure());
      else this.push(null);
    });
    ws.on('error', (err: Error) => this.destroy(new TpError('cluster', 'port-forward-failed', `${what}: ${err.message}`, { cause: err })));
  }

  #failure(): TpError {
    return new TpError('cluster', 'port-forward-failed', `${this.#what}: ${this.#error.trim()}`);
  }

  #receive(data: Buffer): void {
    if (data.length === 0) return;
    const channel = data[0] ?? -1;
    let payload = data.subarray(1);
    if (channel === DATA || channel === ERROR) {
      if (!this.#sawPort[channel]) {
        this.#sawPort[channel] = true;
        payload = payload.subarray(2);
      }
    }
    if (payload.length === 0) return;
    if (channel === DATA) {
      if (!this.push(payload)) this.#ws.pause();
    } else if (channel === ERROR) {
      // The API server reports a failed dial inside the pod here, then closes.
      this.#error += payload.toString('utf8');
    }
  }

  override _read(): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.resume();
  }

  #send(chunks: readonly Buffer[], callback: (error?: Error | null) => void): void {
    const frame = Buffer.allocUnsafe(1 + chunks.reduce((n, c) => n + c.length, 0));
    frame[0] = DATA;
    let at = 1;
    for (const c of chunks) at += c.copy(frame, at);
    let called = false;
    const done = (err?: Error | null): void => {
      if (!called) {
        called = true;
        callback(err);
      }
    };
    this.#ws.send(frame, { binary: true }, (err) => done(err));
    if (this.#ws.bufferedAmount < WRITE_WINDOW_BYTES) done();
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
    if (this.#ws.readyState !== WebSocket.CLOSED) this.#ws.terminate();
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
  const options: WebSocket.ClientOptions = {};
  // Certificates, token and TLS settings of the context, as for every other API call.
  await kc.applyToHTTPSOptions(options);
  const ws = new WebSocket(url, ['v4.channel.k8s.io'], {
    ...options,
    perMessageDeflate: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    // Masking protects browsers' proxies from crafted frames; here it only costs a pass over every
    // byte sent in JavaScript. An all-zero key, which ws supports for this, leaves frames as they are.
    generateMask: (mask: Buffer) => void mask.fill(0),
  });
  // Built at once: the server's first messages may come in the same read as the upgrade.
  const stream = new PodStream(ws, what);
  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error): void => reject(err);
    stream.once('error', failed);
    ws.once('open', () => {
      stream.off('error', failed);
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => {
      // A refusal (403 without pods/portforward, 404 for a pod that is gone) comes as a Status.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        let message = body.trim();
        try {
          message = (JSON.parse(body) as { message?: string }).message ?? message;
        } catch {
          // Not a Status: the body as it is.
        }
        stream.off('error', failed);
        stream.destroy();
        reject(new TpError('cluster', 'port-forward-failed', `${what}: ${res.statusCode ?? 0} ${message}`));
      });
    });
  });
  return stream;
}
