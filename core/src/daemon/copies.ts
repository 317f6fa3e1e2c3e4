/**
 * The workstation's end of a wiretap's copy stream (core/src/copy-frames.ts): each copied
 * connection becomes a connection to the wiretap's local port, fed the caller's bytes; what the
 * local process answers is read and dropped here, and only how each connection ended goes back.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { TunnelMessage } from '@telepresence-ts/proto/manager/v1';
import { COPY_KIND, CopyFrameReader, encodeCopyFrame } from '../copy-frames.js';
import { connectLocal, describeLocalDialError, LOCAL_HOST } from './local-dial.js';
import type { Logger } from './logger.js';

/**
 * How many bytes one local connection may hold unwritten before the stream is paused: the agent
 * then finds its copies waiting and drops what is past its own bound, rather than this process
 * buffering a slow local process's backlog without end.
 */
export const COPY_SOCKET_BACKLOG_BYTES = 1024 * 1024;

/** How long the replies (how each copy ended) gather before they are written. */
export const REPLY_GATHER_MS = 10;

/** Serves one copy stream until it ends; every local connection it made is closed then. */
export function serveCopies(stream: Duplex, localPort: number, log: Logger): Promise<void> {
  const tag = `wiretap copies -> ${LOCAL_HOST}:${localPort}`;
  const reader = new CopyFrameReader();
  const sockets = new Map<number, Socket>();
  let refusedLogged = false;
  let paused = false;
  // Replies gather like the agent's frames (COPY_GATHER_MS there): one write per turn of a few ms.
  let replies: Buffer[] = [];
  let replyTimer: ReturnType<typeof setTimeout> | undefined;
  const reply = (n: number, kind: typeof COPY_KIND.done | typeof COPY_KIND.failed, why = ''): void => {
    replies.push(encodeCopyFrame(n, kind, Buffer.from(why, 'utf8')));
    replyTimer ??= setTimeout(() => {
      replyTimer = undefined;
      const out = Buffer.concat(replies);
      replies = [];
      if (!stream.destroyed && !stream.writableEnded) stream.write(out);
    }, REPLY_GATHER_MS);
  };
  const open = (n: number): Socket => {
    const socket = connectLocal(localPort, { allowHalfOpen: true, noDelay: true });
    sockets.set(n, socket);
    let failed = false;
    // The answers are the local process's own business: read and let go.
    socket.on('data', () => {});
    socket.on('end', () => socket.end());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      failed = true;
      const problem = describeLocalDialError(err, localPort);
      if (err.code !== 'ECONNREFUSED' || !refusedLogged) log(err.code === 'ECONNREFUSED' ? 'warn' : 'info', `${tag}: ${problem}`);
      if (err.code === 'ECONNREFUSED') refusedLogged = true;
      reply(n, COPY_KIND.failed, problem);
    });
    socket.once('connect', () => (refusedLogged = false));
    socket.once('close', () => {
      if (sockets.get(n) === socket) sockets.delete(n);
      if (!failed) reply(n, COPY_KIND.done);
    });
    socket.on('drain', () => {
      if (paused && [...sockets.values()].every((s) => s.writableLength < COPY_SOCKET_BACKLOG_BYTES)) {
        paused = false;
        stream.resume();
      }
    });
    return socket;
  };
  stream.on('data', (piece: Buffer) => {
    let frames;
    try {
      frames = reader.push(piece);
    } catch (err: unknown) {
      log('warn', `${tag}: ${(err as Error).message}`);
      stream.destroy();
      return;
    }
    for (const { connection: n, kind, payload } of frames) {
      if (kind === COPY_KIND.data) {
        const socket = sockets.get(n) ?? open(n);
        socket.write(payload);
        if (socket.writableLength >= COPY_SOCKET_BACKLOG_BYTES && !paused) {
          paused = true;
          stream.pause();
        }
      } else if (kind === COPY_KIND.end) {
        sockets.get(n)?.end();
      } else if (kind === COPY_KIND.abort) {
        sockets.get(n)?.destroy();
        sockets.delete(n);
      }
    }
  });
  return new Promise<void>((resolve) => {
    stream.on('error', (err: Error) => log('debug', `${tag}: ${err.message}`));
    stream.once('end', () => stream.end());
    stream.once('close', () => {
      if (replyTimer !== undefined) clearTimeout(replyTimer);
      for (const socket of sockets.values()) socket.destroy();
      sockets.clear();
      resolve();
    });
  });
}

/**
 * A manager Tunnel stream as a Duplex of its data: `data` messages both ways, `close` as the end.
 * For a copy stream that the manager relays (no direct tunnel to the agent's pod).
 */
export function tunnelCallDuplex(call: ClientDuplexStream<TunnelMessage, TunnelMessage>): Duplex {
  const duplex = new Duplex({
    write(chunk: Buffer, _encoding, done) {
      if (call.write({ data: chunk })) done();
      else call.once('drain', () => done());
    },
    final(done) {
      call.write({ close: { error: '' } });
      call.end();
      done();
    },
    read() {
      call.resume();
    },
    destroy(err, done) {
      call.cancel();
      done(err);
    },
  });
  call.on('data', (msg: TunnelMessage) => {
    if (msg.data !== undefined) {
      if (!duplex.push(msg.data)) call.pause();
    } else if (msg.close !== undefined) {
      if (msg.close.error !== '') duplex.destroy(new Error(msg.close.error));
      else duplex.push(null);
    }
  });
  call.on('error', (err: Error) => duplex.destroy(err));
  call.on('end', () => duplex.push(null));
  return duplex;
}
