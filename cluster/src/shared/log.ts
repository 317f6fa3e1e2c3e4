import { LOG_LEVELS, type LogLevel } from '@telepresence-ts/core/contracts';

/** Structured logging: one JSON object per line, which `kubectl logs` and log shippers both read. */
export interface Logger {
  debug(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  info(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  error(msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** A logger that writes lines at or above `level` through `write`, stamped by `now`. */
export function createLogger(
  program: string,
  level: LogLevel,
  write: (line: string) => void,
  now: () => Date = () => new Date(),
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const at =
    (l: LogLevel) =>
    (msg: string, fields: Readonly<Record<string, unknown>> = {}): void => {
      if (LOG_LEVELS.indexOf(l) >= threshold) {
        write(`${JSON.stringify({ time: now().toISOString(), level: l, program, msg, ...fields })}\n`);
      }
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
