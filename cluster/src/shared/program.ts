import { type LogLevel } from '@telepresence-ts/core/contracts';
import { exitCodeFor, formatTpError, toTpError } from '@telepresence-ts/core/errors';
import { VERSION } from '@telepresence-ts/core/version';
import { createLogger, type Logger } from './log.js';

/** What a program needs to run once its configuration is known. */
export interface ProgramSpec<C extends { logLevel: LogLevel }> {
  /** The container name, used in logs and error hints. */
  readonly name: string;
  /** Parses the environment (each program's env.ts); throws a `config` TpError when it is bad. */
  readonly parseEnv: () => C;
  /** Starts serving; the returned function stops it. */
  readonly start: (config: C, log: Logger) => Promise<() => Promise<void>>;
}

/**
 * The shared life cycle of the in-cluster programs, called from each main.ts: parse the
 * environment once (exit with the config exit code and a clear message when it is bad), log the
 * version and configuration, serve, and stop cleanly on SIGTERM (what the kubelet sends) or SIGINT.
 */
export async function runProgram<C extends { logLevel: LogLevel }>(spec: ProgramSpec<C>): Promise<void> {
  let config: C;
  try {
    config = spec.parseEnv();
  } catch (thrown: unknown) {
    const err = toTpError(thrown);
    process.stderr.write(`${formatTpError(err, spec.name)}\n`);
    process.exit(exitCodeFor(err.category));
  }
  const log = createLogger(spec.name, config.logLevel, (line) => process.stdout.write(line));
  log.info('starting', { version: VERSION, config });
  let stop: () => Promise<void>;
  try {
    stop = await spec.start(config, log);
  } catch (thrown: unknown) {
    const err = toTpError(thrown);
    log.error('failed to start', { code: err.code, error: err.message });
    process.exit(exitCodeFor(err.category));
  }
  log.info('ready');
  const shutdown = (signal: NodeJS.Signals): void => {
    log.info('stopping', { signal });
    stop().then(
      () => process.exit(0),
      (thrown: unknown) => {
        log.error('unclean stop', { error: toTpError(thrown).message });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
