/**
 * The agent's file server for remote volumes (ADR 0003): a TCP listener on the pod's loopback
 * that hands each connection to a fresh OpenSSH `sftp-server` on its stdin and stdout. No SSH:
 * the client's sshfs speaks SFTP directly (`-o directport`) through a Kubernetes port-forward,
 * which only someone allowed to port-forward to (and so exec into) the pod can open.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { PipedProcess } from '../shared/command-runner.js';
import type { Logger } from '../shared/log.js';

/** Debian's openssh-sftp-server, in the agent image. */
export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server';

export interface SftpServerOptions {
  readonly spawn: (command: string, args: readonly string[]) => PipedProcess;
  readonly log: Logger;
  /** Loopback by default: the port-forward reaches it there, the pod network cannot. */
  readonly host?: string;
  readonly port?: number;
  readonly command?: string;
}

export interface SftpServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startSftpServer(options: SftpServerOptions): Promise<SftpServer> {
  const command = options.command ?? SFTP_SERVER_PATH;
  const children = new Set<PipedProcess>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    // -e: log to stderr (our log), not syslog, which the container does not have.
    const child = options.spawn(command, ['-e']);
    children.add(child);
    // sftp-server may exit while the client still writes (EPIPE): that ends this connection,
    // never the agent.
    child.stdin.on('error', () => socket.destroy());
    socket.pipe(child.stdin);
    child.stdout.pipe(socket);
    child.stderr.on('data', (chunk: Buffer) => options.log.debug('sftp-server', { output: chunk.toString('utf8').trim() }));
    socket.on('error', () => child.kill());
    socket.on('close', () => {
      sockets.delete(socket);
      child.kill();
    });
    void child.exited.then(({ exitCode, error }) => {
      children.delete(child);
      if (error !== undefined) options.log.warn('cannot run sftp-server; remote volumes are unavailable', { command, error: error.message });
      else options.log.debug('sftp session ended', { exitCode });
      socket.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of children) c.kill();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
