/** MLflow authentication: credential formats, host allowlist, fetch/dispatcher, local proxy. */
export * from './allowlist.js';
export * from './credentials.js';
export * from './fetch-with-auth.js';
export * from './leak-guard.js';
export * from './provider-env.js';
export * from './proxy.js';
export * from './source.js';
