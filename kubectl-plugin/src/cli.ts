import { TpError, exitCodeFor, formatTpError, toTpError } from '@telepresence-ts/core';
import yargs, { type Argv } from 'yargs';
import { commands } from './commands/index.js';
import { ExitStatus } from './launch.js';
import type { CommandDeps } from './command-deps.js';
import { globalOptions, type GlobalOptions } from './global-options.js';

/** The name users type; yargs shows it in usage lines. */
export const SCRIPT_NAME = 'kubectl telepresence';

/** Where to read about a bad command line: the help of the verb it used, when it used one. */
function helpHint(args: readonly string[], verbs: ReadonlySet<string>): string {
  const verb = args.find((a) => verbs.has(a));
  return `run \`${SCRIPT_NAME}${verb === undefined ? '' : ` ${verb}`} --help\` for usage`;
}

/** Builds the yargs parser with the global options and every command registered. */
export function buildParser(args: readonly string[], deps: CommandDeps): Argv<GlobalOptions> {
  const registered = commands(deps);
  const verbs = new Set(registered.map((c) => String(c.command).split(' ')[0] ?? ''));
  let parser = yargs([...args])
    .scriptName(SCRIPT_NAME)
    .options(globalOptions)
    .strict()
    .demandCommand(1, 'no command given')
    // Our `version` command reports more than yargs' --version would.
    .version(false)
    .help()
    // main.ts decides the exit code; yargs must never call process.exit itself.
    .exitProcess(false)
    .fail((message: string | undefined, err: Error | undefined) => {
      // yargs calls this for its own validation (message set), for its parser's errors (a YError,
      // such as an option given without the value it requires) and for errors thrown by handlers.
      // Some of its messages span lines; ours are one line.
      if (err !== undefined && err.name !== 'YError') throw err;
      const oneLine = (message ?? err?.message ?? 'invalid command line').replace(/\s*\n\s*/g, ' ');
      throw new TpError('user', 'bad-usage', oneLine, { hint: helpHint(args, verbs) });
    })
    .wrap(null) as Argv<GlobalOptions>;
  for (const command of registered) {
    parser = parser.command(command);
  }
  return parser;
}

/** Whether the command line asks for `--output json` (read before yargs, which may have failed). */
function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  const own = end < 0 ? args : args.slice(0, end);
  return own.some((a, i) => a === '--output=json' || a === '-o=json' || ((a === '--output' || a === '-o') && own[i + 1] === 'json'));
}

/**
 * Runs one command line and returns the process exit code. Every error surfaces as a TpError: a
 * one-line message and a hint on stderr, and the exit code of its category.
 */
export async function run(args: readonly string[], deps: CommandDeps): Promise<number> {
  try {
    await buildParser(args, deps).parseAsync();
    return 0;
  } catch (thrown: unknown) {
    // `intercept ... -- cmd` exits with the command's status.
    if (thrown instanceof ExitStatus) return thrown.code;
    const err = toTpError(thrown);
    // Scripts that asked for JSON get the error as JSON too, with the code to branch on.
    if (wantsJson(args)) deps.io.err(`${JSON.stringify({ error: { category: err.category, code: err.code, message: err.message, ...(err.hint !== undefined ? { hint: err.hint } : {}) } })}\n`);
    else deps.io.err(`${formatTpError(err)}\n`);
    return exitCodeFor(err.category);
  }
}
