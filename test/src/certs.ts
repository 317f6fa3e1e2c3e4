/**
 * A throw-away CA and a serving certificate signed by it, made with the `openssl` CLI, for TLS
 * servers the API server must trust (admission webhooks register the CA as `caBundle`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { formatCommandLine, processRunner, type ProcessRunner } from './process-runner.js';

export interface ServingCertOptions {
  /** Existing directory the key material is written to (the caller owns and removes it). */
  readonly dir: string;
  /** IP and DNS subject alternative names. The API server (Go) checks SANs only, never the CN. */
  readonly hosts: readonly string[];
  readonly runner?: ProcessRunner;
  /** Validity; a test run needs hours at most. */
  readonly days?: number;
}

export interface ServingCert {
  readonly caCertPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** The `subjectAltName` value for the given hosts, e.g. `IP:127.0.0.1,DNS:localhost`. */
export function subjectAltName(hosts: readonly string[]): string {
  if (hosts.length === 0) throw new Error('a serving certificate needs at least one host');
  return hosts.map((h) => (isIP(h) === 0 ? `DNS:${h}` : `IP:${h}`)).join(',');
}

/** Generates the CA and the serving certificate into `dir` and returns them as PEM. */
export async function generateServingCert(options: ServingCertOptions): Promise<ServingCert> {
  const runner = options.runner ?? processRunner;
  const days = String(options.days ?? 1);
  const file = (name: string): string => join(options.dir, name);
  const openssl = async (args: readonly string[]): Promise<void> => {
    const r = await runner.run('openssl', args, { timeoutMs: 30_000 });
    if (r.timedOut || r.exitCode !== 0) {
      throw new Error(`${formatCommandLine('openssl', args)} failed (exit ${String(r.exitCode)}): ${r.stderr.trim()}`);
    }
  };

  await openssl([
    'req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-sha256', '-days', days,
    '-subj', '/CN=telepresence-ts test CA',
    // Stated explicitly rather than left to the distribution's openssl.cnf: Go refuses a CA
    // without CA:TRUE and keyCertSign.
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', file('ca.key'), '-out', file('ca.crt'),
  ]);
  await openssl([
    'req', '-new', '-nodes', '-newkey', 'rsa:2048', '-sha256',
    '-subj', `/CN=${options.hosts[0] ?? 'server'}`,
    '-keyout', file('server.key'), '-out', file('server.csr'),
  ]);
  await writeFile(
    file('server.ext'),
    [
      `subjectAltName=${subjectAltName(options.hosts)}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await openssl([
    'x509', '-req', '-sha256', '-days', days,
    '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-extfile', file('server.ext'), '-out', file('server.crt'),
  ]);
  const [caCertPem, certPem, keyPem] = await Promise.all([
    readFile(file('ca.crt'), 'utf8'),
    readFile(file('server.crt'), 'utf8'),
    readFile(file('server.key'), 'utf8'),
  ]);
  return { caCertPem, certPem, keyPem };
}
