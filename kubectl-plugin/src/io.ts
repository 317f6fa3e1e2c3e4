/**
 * The terminal as the CLI sees it: two line-oriented writers. main.ts binds them to the process's
 * stdout and stderr; tests pass in buffers.
 */
export interface Io {
  /** Writes to standard output (the data a command prints). */
  out(text: string): void;
  /** Writes to standard error (errors, hints, progress). */
  err(text: string): void;
}
