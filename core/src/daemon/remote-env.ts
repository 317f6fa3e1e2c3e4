/**
 * The intercepted container's environment on the workstation: what the client adds to the agent's
 * report, and the two file formats it is written in (`--env-file`, `--env-json`). Pure.
 */
import { INTERCEPT_ENV } from '../contracts.js';

export interface InterceptEnvFacts {
  readonly interceptId: string;
  readonly containerName: string;
  /** Empty when the volumes are not mounted. */
  readonly mountPoint: string;
  readonly mounts: readonly string[];
}

/** The container's variables plus TELEPRESENCE_ROOT, _MOUNTS, _INTERCEPT_ID and _CONTAINER. */
export function localEnvironment(remote: Readonly<Record<string, string>>, facts: InterceptEnvFacts): Record<string, string> {
  return {
    ...remote,
    [INTERCEPT_ENV.root]: facts.mountPoint,
    [INTERCEPT_ENV.mounts]: facts.mounts.join(':'),
    [INTERCEPT_ENV.interceptId]: facts.interceptId,
    [INTERCEPT_ENV.container]: facts.containerName,
  };
}

// Values made only of these need no quotes in any dotenv dialect.
const PLAIN = /^[A-Za-z0-9_./:@%+,=-]*$/;

/**
 * Dotenv text, one `NAME=value` line per variable in name order. A value with other characters is
 * double-quoted with `\\`, `\"`, `\n`, `\r`, `\t` and `\$` escaped, as python-dotenv, Docker Compose and
 * `parseDotenv` read it back.
 */
export function formatDotenv(env: Readonly<Record<string, string>>): string {
  return Object.keys(env)
    .sort()
    .map((name) => {
      const value = env[name] ?? '';
      if (PLAIN.test(value)) return `${name}=${value}\n`;
      const escaped = value.replace(/[\\"\n\r\t$]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', $: '\\$' })[c] ?? c);
      return `${name}="${escaped}"\n`;
    })
    .join('');
}

/** Reads what `formatDotenv` writes (and plain `NAME=value` lines); `#` lines are comments. */
export function parseDotenv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const name = line.slice(0, eq);
    const raw = line.slice(eq + 1);
    env[name] =
      raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2
        ? raw.slice(1, -1).replace(/\\(.)/g, (_m, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c)
        : raw;
  }
  return env;
}

/** The `--env-json` text: one flat object, names in order. */
export function formatEnvJson(env: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) sorted[name] = env[name] ?? '';
  return `${JSON.stringify(sorted, null, 2)}\n`;
}
