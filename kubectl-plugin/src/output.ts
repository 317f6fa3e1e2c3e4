/** Rendering helpers shared by the commands. */
import type { Io } from './io.js';
import type { OutputFormat } from './global-options.js';

/** Prints `value` as one JSON line, or `text()` for `--output text`. */
export function print(io: Io, format: OutputFormat, value: unknown, text: () => string): void {
  io.out(format === 'json' ? `${JSON.stringify(value)}\n` : text());
}

/** Left-aligned columns separated by two spaces; every line ends with a newline. */
export function table(rows: ReadonlyArray<readonly string[]>): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd() + '\n').join('');
}

/** A progress line on stderr (never stdout, which carries the result). */
export function progressTo(io: Io): (line: string) => void {
  return (line) => io.err(`${line}\n`);
}
