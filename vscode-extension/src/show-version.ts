import type { Host } from './host.js';

/** The text of the `telepresence.showVersion` notification. */
export function versionMessage(version: string): string {
  return `Telepresence client v${version}`;
}

/** Handler of the `telepresence.showVersion` command. */
export function showVersion(host: Host, version: string): void {
  host.showInformationMessage(versionMessage(version));
}
