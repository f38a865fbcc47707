import { badRequest } from '../../errors.js';
import {
  optionalBoolean,
  optionalInteger,
  parseConnectionUrl,
  type Raw,
  rejectUnknownKeys,
  requireString,
} from '../postgresql/common.js';

/** Engine config as the API takes it and as it is stored (encrypted). */
export interface MysqlConfig {
  /** `mysql://host:port/db` (db optional) — no credentials in it. `?ssl-mode=required|verify_identity` turns TLS on. */
  connection_url: string;
  username: string;
  password: string;
  /** Size of the engine's connection pool (default 4). */
  max_connections: number;
  /** With TLS on, verify the server certificate (default true). */
  verify_tls: boolean;
}

export const CONFIG_FIELDS = [
  'connection_url',
  'username',
  'password',
  'max_connections',
  'verify_tls',
] as const;
const CODE = 'InvalidEngineConfig';
const EXAMPLE = 'mysql://db.internal:3306/app';
const SSL_MODES = ['disabled', 'required', 'verify_ca', 'verify_identity'];

export interface MysqlTarget {
  host: string;
  urlHost: string;
  port: number;
  /** '' when the URL names no database. */
  database: string;
  tls: boolean;
}

export function parseTarget(connectionUrl: string): MysqlTarget {
  const u = parseConnectionUrl(connectionUrl, ['mysql', 'mariadb'], 3306, EXAMPLE, CODE);
  for (const key of u.params.keys()) {
    if (key !== 'ssl-mode') {
      throw badRequest(
        CODE,
        `connection_url parameter ${JSON.stringify(key.slice(0, 64))} is not supported`,
        'Only ?ssl-mode=disabled|required|verify_ca|verify_identity is; credentials go in username and password.',
      );
    }
  }
  const mode = (u.params.get('ssl-mode') ?? 'disabled').toLowerCase();
  if (!SSL_MODES.includes(mode)) {
    throw badRequest(
      CODE,
      'connection_url has an unsupported ssl-mode',
      `ssl-mode is one of ${SSL_MODES.join(', ')}.`,
    );
  }
  return { host: u.host, urlHost: u.urlHost, port: u.port, database: u.database, tls: mode !== 'disabled' };
}

export function parseMysqlConfig(raw: Raw): MysqlConfig {
  rejectUnknownKeys(raw, CONFIG_FIELDS, 'MySQL engine config', CODE);
  const connection_url = requireString(raw, 'connection_url', CODE, `Example: ${EXAMPLE}`, 2048);
  parseTarget(connection_url);
  const username = requireString(
    raw,
    'username',
    CODE,
    'The admin user Custody connects as (needs CREATE USER).',
    80,
  );
  const password = requireString(raw, 'password', CODE, "The admin user's password.", 1024);
  return {
    connection_url,
    username,
    password,
    max_connections: optionalInteger(raw, 'max_connections', CODE, 4, 1, 100),
    verify_tls: optionalBoolean(raw, 'verify_tls', CODE, true),
  };
}

export function redactMysqlConfig(config: MysqlConfig): Record<string, unknown> {
  return {
    connection_url: config.connection_url,
    username: config.username,
    max_connections: config.max_connections,
    verify_tls: config.verify_tls,
  };
}
