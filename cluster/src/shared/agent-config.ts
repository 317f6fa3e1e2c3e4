/**
 * The agent configuration schema of core, for the in-cluster programs.
 *
 * Why this file: `@telepresence-ts/core`'s entry point does not (yet) re-export
 * `core/src/agent-config.ts`, and its package `exports` allow no deep import. Every cluster program
 * imports the schema from here, so when core exports it this becomes a one-line change.
 */
export * from '../../../core/src/agent-config.js';
