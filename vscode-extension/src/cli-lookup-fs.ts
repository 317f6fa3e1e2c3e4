/**
 * node:fs as the CLI lookup needs it (cli-bundle.ts): for the daemon, which runs the CLI it finds,
 * and for the extension host, which says why the daemon found none.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import type { CliLookupFs } from './cli-bundle.js';

export const nodeCliLookupFs: CliLookupFs = {
  realpath: (path) => {
    try {
      return realpathSync(path);
    } catch {
      return undefined;
    }
  },
  isFile: (path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  },
  readText: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
};
