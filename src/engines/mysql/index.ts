import type { EngineFactory } from '../engine.js';
import { type MysqlConfig, parseMysqlConfig, redactMysqlConfig } from './config.js';
import { MysqlEngine } from './engine.js';
import { type MysqlRole, parseMysqlRole } from './statements.js';

export type { MysqlConfig } from './config.js';
export { MysqlEngine } from './engine.js';
export type { MysqlRole } from './statements.js';

/** Dynamic MySQL/MariaDB users: `CREATE USER … IDENTIFIED BY …` per lease, dropped on revoke. */
export const mysqlEngine: EngineFactory<MysqlConfig, MysqlRole> = {
  type: 'mysql',
  parseConfig: (raw) => parseMysqlConfig(raw),
  parseRole: (raw) => parseMysqlRole(raw),
  open: (config) => new MysqlEngine(config),
  redactConfig: (config) => redactMysqlConfig(config),
};
