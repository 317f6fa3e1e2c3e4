/**
 * The extension's child processes: the bundled daemon (dist/daemon.js, detached, shared with the
 * CLI) and the Kubernetes helper (dist/kube-helper.js, tied to the extension host). The one file
 * of the extension that imports node:child_process. In desktop VS Code the extension host's
 * executable is Electron, which runs as plain Node only with ELECTRON_RUN_AS_NODE.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeFlags } from '@telepresence-ts/core';
import { CLI_PATH_ENV } from './cli-bundle.js';
import { KubeHelperClient } from './kube-helper-client.js';
import { lineSplitter, type HelperEvent } from './kube-helper-protocol.js';

/** The extension host's environment, minus what is its own business. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ELECTRON_RUN_AS_NODE: '1' };
  delete env['NODE_OPTIONS'];
  for (const key of Object.keys(env)) if (key.startsWith('VSCODE_')) delete env[key];
  return env;
}

/**
 * Starts the daemon in the background; returns at once (the caller polls its socket). `cliPath`
 * is `telepresence.cliPath`, the CLI its outbound access runs (empty: the one on PATH); the daemon
 * reads it once, so a change applies to the next daemon.
 */
export function launchDaemon(daemonScript: string, logPath: string, cliPath: string): void {
  mkdirSync(dirname(logPath), { recursive: true, mode: 0o700 });
  // The daemon logs to this file itself; stdout/stderr go there too, to keep a crash's stack.
  const fd = openSync(logPath, 'a');
  try {
    const env = childEnv();
    // Only the setting names the CLI: one inherited from the extension host's environment would
    // make the daemon use a CLI that the extension's messages know nothing of.
    if (cliPath.trim() !== '') env[CLI_PATH_ENV] = cliPath.trim();
    else delete env[CLI_PATH_ENV];
    const child = spawn(process.execPath, ['--enable-source-maps', daemonScript], { detached: true, stdio: ['ignore', fd, fd], env });
    child.unref();
  } finally {
    closeSync(fd);
  }
}

/** Starts a Kubernetes helper for the cluster `flags` name; `log` receives what it prints on stderr. */
export function startKubeHelper(helperScript: string, flags: KubeFlags, log: (line: string) => void): KubeHelperClient {
  const child = spawn(process.execPath, ['--enable-source-maps', helperScript, JSON.stringify(flags)], { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', lineSplitter((line) => log(`kube helper: ${line}`)));
  // A closed pipe surfaces as an exit below; the write error itself carries nothing more.
  child.stdin.on('error', () => undefined);
  return new KubeHelperClient({
    send: (req) => {
      if (child.stdin.writable) child.stdin.write(`${JSON.stringify(req)}\n`);
    },
    onEvent: (listener) => {
      child.stdout.on(
        'data',
        lineSplitter((line) => {
          try {
            listener(JSON.parse(line) as HelperEvent);
          } catch {
            log(`kube helper: unreadable line ${line}`);
          }
        }),
      );
    },
    onExit: (listener) => {
      child.on('exit', (code, signal) => listener(signal !== null ? `killed by ${signal}` : `exit status ${String(code)}`));
      child.on('error', (err) => listener(err.message));
    },
    close: () => child.stdin.end(),
  });
}
