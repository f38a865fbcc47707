import type { EngineFactory } from '../engine.js';
import { type PostgresConfig, parsePostgresConfig, redactPostgresConfig } from './config.js';
import { PostgresEngine } from './engine.js';
import { type PostgresRole, parsePostgresRole } from './statements.js';

export type { PostgresConfig } from './config.js';
export { PostgresEngine } from './engine.js';
export type { PostgresRole } from './statements.js';

/** Dynamic PostgreSQL roles: `CREATE ROLE … VALID UNTIL …` per lease, dropped on revoke. */
export const postgresqlEngine: EngineFactory<PostgresConfig, PostgresRole> = {
  type: 'postgresql',
  parseConfig: (raw) => parsePostgresConfig(raw),
  parseRole: (raw) => parsePostgresRole(raw),
  open: (config) => new PostgresEngine(config),
  redactConfig: (config) => redactPostgresConfig(config),
};
