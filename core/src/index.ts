/** The public surface of @telepresence-ts/core. */
export * from './contracts.js';
export * from './errors.js';
export * from './version.js';
