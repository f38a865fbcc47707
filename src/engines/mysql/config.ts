import {
  type ConfigForm,
  parseSqlConfig,
  parseSqlTarget,
  redactSqlConfig,
  SQL_CONFIG_FIELDS,
  type SqlConfig,
  type SqlTarget,
  type UrlForm,
} from '../sql/config.js';
import type { Raw } from '../sql/input.js';

/**
 * Engine config as the API takes it and as it is stored (encrypted): the shared SQL fields;
 * `mysql://host:port/db` (db optional), `?ssl-mode=required|verify_identity` turns TLS on.
 */
export type MysqlConfig = SqlConfig;

export const CONFIG_FIELDS = SQL_CONFIG_FIELDS;

export const URL_FORM: UrlForm = {
  schemes: ['mysql', 'mariadb'],
  defaultPort: 3306,
  example: 'mysql://db.internal:3306/app',
  sslParam: 'ssl-mode',
  sslModes: ['disabled', 'required', 'verify_ca', 'verify_identity'],
  modeIgnoresCase: true,
  // '' when the URL names none: sessions then have no default database.
  defaultDatabase: '',
};

const FORM: ConfigForm = {
  what: 'MySQL engine config',
  fields: CONFIG_FIELDS,
  url: URL_FORM,
  usernameHint: 'The admin user Custody connects as (needs CREATE USER).',
  usernameMax: 80,
  passwordHint: "The admin user's password.",
};

export const parseTarget = (connectionUrl: string): SqlTarget => parseSqlTarget(connectionUrl, URL_FORM);

export const parseMysqlConfig = (raw: Raw): MysqlConfig => parseSqlConfig(raw, FORM);

export const redactMysqlConfig = (config: MysqlConfig): Record<string, unknown> => redactSqlConfig(config);
