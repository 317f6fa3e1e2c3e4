import type { Options } from 'yargs';

/** The output formats every data-printing command supports. */
export const OUTPUT_FORMATS = ['text', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The options every command accepts, declared once here and registered on the root parser. */
export interface GlobalOptions {
  /** The kubeconfig context to use instead of the current one. */
  context: string | undefined;
  /** The namespace to work in instead of the context's. */
  namespace: string | undefined;
  /** The kubeconfig file to read instead of $KUBECONFIG or ~/.kube/config. */
  kubeconfig: string | undefined;
  output: OutputFormat;
}

/**
 * yargs declarations for GlobalOptions. The long names match kubectl's own flags, so that
 * `kubectl telepresence --context x` reads the way users expect; only `-n` gets a short alias, as
 * in kubectl.
 */
export const globalOptions = {
  context: {
    type: 'string',
    describe: 'The name of the kubeconfig context to use',
    global: true,
  },
  namespace: {
    alias: 'n',
    type: 'string',
    describe: 'The namespace to work in',
    global: true,
  },
  kubeconfig: {
    type: 'string',
    describe: 'Path to the kubeconfig file to use',
    global: true,
  },
  output: {
    alias: 'o',
    choices: OUTPUT_FORMATS,
    default: 'text' as OutputFormat,
    describe: 'Output format',
    global: true,
  },
} as const satisfies Record<keyof GlobalOptions, Options>;
