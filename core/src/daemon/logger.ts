/** The daemon's log: one line per event, to a file in production and to an array in tests. */
import { appendFileSync } from 'node:fs';
import type { LogLevel } from '../contracts.js';

export type Logger = (level: LogLevel, message: string) => void;

export const silentLogger: Logger = () => undefined;

/** Appends `<ISO time> <level> <message>` lines to a file (synchronously: log lines are rare and a crash must not lose them). */
export function fileLogger(path: string): Logger {
  return (level, message) => {
    try {
      appendFileSync(path, `${new Date().toISOString()} ${level.padEnd(5)} ${message}\n`);
    } catch {
      // A log we cannot write must not take the daemon down.
    }
  };
}
