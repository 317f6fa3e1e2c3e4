/**
 * The product version: one number for the CLI, the extension and the cluster images.
 *
 * esbuild replaces `__TP_VERSION__` with the root package.json's version at build time (see
 * esbuild.config.mjs). Code run unbundled (the unit tests) never sees the define, so `typeof`
 * guards the lookup and the development fallback applies.
 */

declare const __TP_VERSION__: string | undefined;

/** The version reported by code that was not built by esbuild. */
export const DEV_VERSION = '0.0.0-dev';

/** Picks the build-time version when there is one, the development fallback otherwise. */
export function resolveVersion(defined: string | undefined): string {
  return defined !== undefined && defined !== '' ? defined : DEV_VERSION;
}

/** The version of this build of telepresence-ts. */
export const VERSION: string = resolveVersion(typeof __TP_VERSION__ === 'string' ? __TP_VERSION__ : undefined);
