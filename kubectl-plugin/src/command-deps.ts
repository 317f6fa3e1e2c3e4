import type { Io } from './io.js';

/** What every command module may use; built once by main.ts and handed to each command. */
export interface CommandDeps {
  readonly io: Io;
  /** The client's version (core's VERSION in production, a fixed string in tests). */
  readonly version: string;
}
