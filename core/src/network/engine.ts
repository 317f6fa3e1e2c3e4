/**
 * The packet engine port: `tp-netstack --device NAME --mtu N --flows SOCKET --run-as UID:GID`, the
 * Go program that attaches to the TUN device and hands every TCP/UDP flow to the user daemon's flow
 * socket. It prints `ready` on stdout once attached and exits on SIGTERM or when its stdin closes,
 * so a network daemon that dies, however it dies, takes its engine with it.
 */
import type { ProcessExit } from '../process/process-runner.js';

export interface EngineSpec {
  /** The engine binary (absolute). */
  readonly command: string;
  readonly device: string;
  readonly mtu: number;
  readonly flowSocket: string;
  /**
   * The daemon's owner. The engine is started as root and becomes this user and group for good
   * (`--run-as`) once it has opened the device, before it reads a packet or dials the flow socket.
   */
  readonly uid: number;
  readonly gid: number;
}

/** The engine's command-line arguments. */
export function engineArgs(spec: EngineSpec): string[] {
  const args = ['--device', spec.device, '--mtu', String(spec.mtu), '--flows', spec.flowSocket];
  // An owner that is root has nothing to drop to: the engine then stays root, as its owner is.
  return spec.uid === 0 ? args : [...args, '--run-as', `${spec.uid}:${spec.gid}`];
}

export interface EngineProcess {
  readonly pid: number | undefined;
  /** Resolves when the engine prints `ready`; never rejects (race it with `exited`). */
  readonly ready: Promise<void>;
  /** Resolves when it has exited, or could not start (`startError`). */
  readonly exited: Promise<ProcessExit>;
  /** The tail of what it wrote on stderr, for error messages. */
  stderr(): string;
  /** Closes its stdin and sends SIGTERM (SIGKILL if it lingers); resolves once it has exited. */
  stop(): Promise<void>;
}

export type EngineSpawner = (spec: EngineSpec) => EngineProcess;
