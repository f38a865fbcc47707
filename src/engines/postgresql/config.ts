import { badRequest } from '../../errors.js';
import {
  optionalBoolean,
  optionalInteger,
  parseConnectionUrl,
  type Raw,
  rejectUnknownKeys,
  requireString,
} from './common.js';

/** Engine config as the API takes it and as it is stored (encrypted). */
export interface PostgresConfig {
  /** `postgres://host:port/db` — no credentials in it. `?sslmode=require|verify-ca|verify-full` turns TLS on. */
  connection_url: string;
  username: string;
  password: string;
  /** Size of the engine's connection pool (default 4). */
  max_connections: number;
  /** With TLS on, verify the server certificate (default true). */
  verify_tls: boolean;
  /**
   * How passwords go to the server in CREATE/ALTER ROLE: `scram-sha-256` (default) sends the SCRAM
   * verifier, so the password never reaches the server's logs; `password` sends it as it is (only for
   * custom statements that need the plain value).
   */
  password_authentication: PasswordAuthentication;
}

export const PASSWORD_AUTHENTICATIONS = ['scram-sha-256', 'password'] as const;
export type PasswordAuthentication = (typeof PASSWORD_AUTHENTICATIONS)[number];

export const CONFIG_FIELDS = [
  'connection_url',
  'username',
  'password',
  'max_connections',
  'verify_tls',
  'password_authentication',
] as const;
const CODE = 'InvalidEngineConfig';
const EXAMPLE = 'postgres://db.internal:5432/app';
const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'];

export interface PostgresTarget {
  host: string;
  urlHost: string;
  port: number;
  database: string;
  tls: boolean;
}

export function parseTarget(connectionUrl: string): PostgresTarget {
  const u = parseConnectionUrl(connectionUrl, ['postgres', 'postgresql'], 5432, EXAMPLE, CODE);
  for (const key of u.params.keys()) {
    if (key !== 'sslmode') {
      throw badRequest(
        CODE,
        `connection_url parameter ${JSON.stringify(key.slice(0, 64))} is not supported`,
        'Only ?sslmode=disable|require|verify-ca|verify-full is; credentials go in username and password.',
      );
    }
  }
  const sslmode = u.params.get('sslmode') ?? 'disable';
  if (!SSL_MODES.includes(sslmode)) {
    throw badRequest(
      CODE,
      'connection_url has an unsupported sslmode',
      `sslmode is one of ${SSL_MODES.join(', ')}.`,
    );
  }
  return {
    host: u.host,
    urlHost: u.urlHost,
    port: u.port,
    database: u.database || 'postgres',
    tls: sslmode !== 'disable',
  };
}

export function parsePostgresConfig(raw: Raw): PostgresConfig {
  rejectUnknownKeys(raw, CONFIG_FIELDS, 'PostgreSQL engine config', CODE);
  const connection_url = requireString(raw, 'connection_url', CODE, `Example: ${EXAMPLE}`, 2048);
  parseTarget(connection_url);
  const username = requireString(
    raw,
    'username',
    CODE,
    'The admin role Custody connects as (needs CREATEROLE).',
    63,
  );
  const password = requireString(raw, 'password', CODE, "The admin role's password.", 1024);
  return {
    connection_url,
    username,
    password,
    max_connections: optionalInteger(raw, 'max_connections', CODE, 4, 1, 100),
    verify_tls: optionalBoolean(raw, 'verify_tls', CODE, true),
    password_authentication: passwordAuthentication(raw.password_authentication),
  };
}

function passwordAuthentication(v: unknown): PasswordAuthentication {
  if (v === undefined || v === null) return 'scram-sha-256';
  if (typeof v === 'string' && (PASSWORD_AUTHENTICATIONS as readonly string[]).includes(v))
    return v as PasswordAuthentication;
  throw badRequest(
    CODE,
    'password_authentication must be scram-sha-256 or password',
    'scram-sha-256 (default) sends the SCRAM verifier instead of the password.',
  );
}

export function redactPostgresConfig(config: PostgresConfig): Record<string, unknown> {
  return {
    connection_url: config.connection_url,
    username: config.username,
    max_connections: config.max_connections,
    verify_tls: config.verify_tls,
    password_authentication: config.password_authentication ?? 'scram-sha-256',
  };
}
