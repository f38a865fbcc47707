import { badRequest } from '../../errors.js';
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
 * Engine config as the API takes it and as it is stored (encrypted): the shared SQL fields
 * (`postgres://host:port/db`, `?sslmode=require|verify-ca|verify-full` turns TLS on) and how
 * passwords travel.
 */
export interface PostgresConfig extends SqlConfig {
  /**
   * How passwords go to the server in CREATE/ALTER ROLE: `scram-sha-256` (default) sends the SCRAM
   * verifier, so the password never reaches the server's logs; `password` sends it as it is (only for
   * custom statements that need the plain value).
   */
  password_authentication: PasswordAuthentication;
}

export const PASSWORD_AUTHENTICATIONS = ['scram-sha-256', 'password'] as const;
export type PasswordAuthentication = (typeof PASSWORD_AUTHENTICATIONS)[number];

export const CONFIG_FIELDS = [...SQL_CONFIG_FIELDS, 'password_authentication'] as const;
const CODE = 'InvalidEngineConfig';

export const URL_FORM: UrlForm = {
  schemes: ['postgres', 'postgresql'],
  defaultPort: 5432,
  example: 'postgres://db.internal:5432/app',
  sslParam: 'sslmode',
  sslModes: ['disable', 'require', 'verify-ca', 'verify-full'],
  modeIgnoresCase: false,
  // libpq's default too: every cluster has it.
  defaultDatabase: 'postgres',
};

const FORM: ConfigForm = {
  what: 'PostgreSQL engine config',
  fields: CONFIG_FIELDS,
  url: URL_FORM,
  usernameHint: 'The admin role Custody connects as (needs CREATEROLE).',
  usernameMax: 63,
  passwordHint: "The admin role's password.",
};

export const parseTarget = (connectionUrl: string): SqlTarget => parseSqlTarget(connectionUrl, URL_FORM);

export function parsePostgresConfig(raw: Raw): PostgresConfig {
  return {
    ...parseSqlConfig(raw, FORM),
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
    ...redactSqlConfig(config),
    password_authentication: config.password_authentication ?? 'scram-sha-256',
  };
}
