/**
 * kubectl behind a narrow port for the e2e suites. Every call carries a timeout, so a poll built
 * from these calls with `eventually()` is bounded.
 */
import { formatCommandLine, processRunner, type LongRunning, type ProcessRunner } from './process-runner.js';

export interface KubectlOptions {
  /** Sent to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  readonly input?: string;
  /** Defaults to DEFAULT_KUBECTL_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

// Generous for a single API call on a loaded 2-core machine, short enough that a wedged API
// server fails the suite rather than hanging it.
export const DEFAULT_KUBECTL_TIMEOUT_MS = 60_000;

/** A kubectl invocation that exited non-zero or timed out; the message includes stderr. */
export class KubectlError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | null,
    readonly timedOut: boolean,
  ) {
    const how = timedOut ? 'timed out' : `failed (exit ${String(exitCode)})`;
    super(`${formatCommandLine('kubectl', args)} ${how}: ${stderr.trim() || '(no stderr)'}`);
    this.name = 'KubectlError';
  }
}

export interface Kube {
  readonly kubeconfig: string;
  /** Runs kubectl to completion and returns its stdout; throws KubectlError otherwise. */
  kubectl(args: readonly string[], options?: KubectlOptions): Promise<string>;
  /** `kubectl <args> -o json`, parsed. */
  json<T>(args: readonly string[], options?: KubectlOptions): Promise<T>;
  /** `kubectl apply -f -` with the objects as a JSON List. */
  apply(objects: readonly object[], options?: KubectlOptions): Promise<string>;
  /** Starts a kubectl that keeps running, e.g. `port-forward`. */
  start(args: readonly string[]): LongRunning;
  /**
   * `kubectl describe` of each target plus the namespace's events, for timeout messages.
   * Never throws: a failing command contributes its error text instead.
   */
  diagnostics(namespace: string | undefined, targets: readonly string[]): Promise<string>;
}

/** Builds the adapter for one cluster. `runner` is replaced by a fake in unit tests. */
export function createKube(kubeconfig: string, runner: ProcessRunner = processRunner): Kube {
  // KUBECONFIG rather than --kubeconfig: the variable also accepts a colon-separated list.
  const env = { ...process.env, KUBECONFIG: kubeconfig };

  const kubectl = async (args: readonly string[], options: KubectlOptions = {}): Promise<string> => {
    const result = await runner.run('kubectl', args, {
      env,
      timeoutMs: options.timeoutMs ?? DEFAULT_KUBECTL_TIMEOUT_MS,
      ...(options.input === undefined ? {} : { input: options.input }),
    });
    if (result.timedOut || result.exitCode !== 0) {
      throw new KubectlError(args, result.stderr, result.exitCode, result.timedOut);
    }
    return result.stdout;
  };

  const json = async <T>(args: readonly string[], options?: KubectlOptions): Promise<T> => {
    const out = await kubectl([...args, '-o', 'json'], options);
    try {
      return JSON.parse(out) as T;
    } catch (err) {
      throw new Error(`${formatCommandLine('kubectl', args)} -o json printed invalid JSON: ${out.slice(0, 500)}`, {
        cause: err,
      });
    }
  };

  const section = async (title: string, args: readonly string[]): Promise<string> => {
    try {
      return `### ${title}\n${(await kubectl(args, { timeoutMs: 20_000 })).trimEnd()}`;
    } catch (err) {
      return `### ${title}\n(${err instanceof Error ? err.message : String(err)})`;
    }
  };

  return {
    kubeconfig,
    kubectl,
    json,
    apply: (objects, options) =>
      kubectl(['apply', '-f', '-'], {
        ...options,
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
      }),
    start: (args) => runner.start('kubectl', args, { env }),
    async diagnostics(namespace, targets) {
      const ns = namespace === undefined ? [] : ['-n', namespace];
      const parts: string[] = [];
      for (const target of targets) {
        parts.push(await section(`kubectl describe ${target}`, ['describe', target, ...ns]));
      }
      if (namespace !== undefined) {
        parts.push(
          await section(`events in ${namespace}`, ['get', 'events', ...ns, '--sort-by=.metadata.creationTimestamp']),
        );
      }
      return parts.join('\n');
    },
  };
}
