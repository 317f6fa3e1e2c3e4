import { MAX_WATCH_BODY_BYTES, TpError, formatTrafficEvent, viewOf, type TrafficEvent } from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { connectedDaemon } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { defineCommand, type AnyCommand } from './define.js';

interface WatchArgs extends GlobalOptions {
  name: string;
  headers: boolean;
  bodies: string | undefined;
  'show-credentials': boolean;
}

/** What `--bodies` without a size shows of each body. */
export const DEFAULT_BODY_BYTES = 4096;

/** `--bodies` as a byte count: absent 0, bare the default, else a number up to 64 KiB. */
export function bodyBytesOf(flag: string | undefined): number {
  if (flag === undefined) return 0;
  if (flag === '' || flag === 'true') return DEFAULT_BODY_BYTES;
  if (flag === 'false') return 0;
  const n = Number(flag);
  if (!Number.isInteger(n) || n < 0 || n > MAX_WATCH_BODY_BYTES) {
    throw new TpError('user', 'bad-flag', `--bodies takes a number of bytes from 0 to ${MAX_WATCH_BODY_BYTES}, not "${flag}"`, { hint: `e.g. --bodies=1024, or --bodies alone for ${DEFAULT_BODY_BYTES}` });
  }
  return n;
}

/**
 * `watch <name>`: the traffic of an intercept or wiretap as it happens, one line (or JSON object)
 * per HTTP request or TCP connection, until Ctrl-C or the engagement ends.
 */
export function watchCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<WatchArgs>({
    command: 'watch <name>',
    describe: 'Show the requests and connections of an intercept or wiretap as they happen',
    builder: (y) =>
      y
        .positional('name', { type: 'string', demandOption: true, describe: 'The intercept or wiretap, as list shows it' })
        .option('headers', { type: 'boolean', default: false, describe: 'Print the request and response headers of each request' })
        .option('bodies', { type: 'string', describe: `Print the first bytes of each body (--bodies alone: ${DEFAULT_BODY_BYTES})` })
        .option('show-credentials', { type: 'boolean', default: false, describe: 'Show the values of headers that carry credentials (Authorization, Cookie, tokens) instead of masking them' }),
    handler: async (argv) => {
      const bodyBytes = bodyBytesOf(argv.bodies);
      const options = { headers: argv.headers, bodies: bodyBytes > 0, showCredentials: argv['show-credentials'] };
      const json = argv.output === 'json';
      const { daemon } = await connectedDaemon(deps, argv);
      try {
        await new Promise<void>((resolve, reject) => {
          const onEvent = (e: TrafficEvent): void => {
            if (json) deps.io.out(`${JSON.stringify(viewOf(e, options))}\n`);
            else deps.io.out(`${formatTrafficEvent(e, options).join('\n')}\n`);
          };
          let stopInterrupt = (): void => undefined;
          const stop = daemon.watchTraffic({ name: argv.name, namespace: argv.namespace ?? '', bodyBytes }, onEvent, (err) => {
            stopInterrupt();
            if (err !== undefined) {
              reject(err);
            } else {
              deps.io.err('the traffic-manager ended the watch\n');
              resolve();
            }
          });
          stopInterrupt = deps.onInterrupt(() => {
            stop();
            resolve();
          });
          if (!json) deps.io.err(`Watching ${argv.name} (Ctrl-C to stop)\n`);
        });
      } finally {
        daemon.close();
      }
    },
  });
}
