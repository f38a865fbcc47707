/**
 * Embedding the broker in another Node process (tests, tools). Job code uses `custody/client`.
 */
export { type RunningBroker, startBroker } from './broker.js';
export { resolveServerConfig, type ServerConfig } from './config.js';
export { CustodyError } from './errors.js';
