import mysql from 'mysql2/promise';
import { badRequest } from '../../errors.js';
import {
  optionalStringArray,
  type Placeholder,
  type Raw,
  rejectUnknownKeys,
  renderStatement,
  requireString,
  validateGrantText,
  validateStatements,
} from '../postgresql/common.js';
import { DEFAULT_USERNAME_TEMPLATE, validateUsernameTemplate } from '../postgresql/username.js';

/** MySQL allows 32 characters in a user name (MariaDB 80): use the smaller. */
export const MYSQL_MAX_USERNAME = 32;

/**
 * A dynamic role of the MySQL/MariaDB engine. Omitted statement lists mean "the safe default":
 * creation `CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}` plus one `GRANT … TO {{name}}@'%'`
 * per grant; revocation: lock the account, end its sessions, `DROP USER IF EXISTS` on every host.
 * MySQL has no VALID UNTIL, so renewal does nothing unless `renew_statements` say otherwise: the
 * lease's expiry is enforced by revoking it.
 */
export interface MysqlRole {
  creation_statements?: string[];
  revocation_statements?: string[];
  renew_statements?: string[];
  /** `SELECT ON app.*`, `SELECT, INSERT ON app.orders`: each becomes `GRANT … TO {{name}}@'%'`. */
  grants?: string[];
  username_template?: string;
}

export const ROLE_FIELDS = [
  'creation_statements',
  'revocation_statements',
  'renew_statements',
  'grants',
  'username_template',
] as const;

export const DEFAULT_CREATION = "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}";

const CODE = 'InvalidRoleConfig';
const STATEMENT_HINT =
  "Placeholders are substituted already quoted as string literals — do not add quotes around them. Example: CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}";
const GRANT_HINT =
  'Examples: "SELECT ON app.*", "SELECT, INSERT ON app.orders", "EXECUTE ON PROCEDURE app.report".';

export function parseMysqlRole(raw: Raw): MysqlRole {
  rejectUnknownKeys(raw, ROLE_FIELDS, 'MySQL role', CODE);
  const role: MysqlRole = {};
  const all: Placeholder[] = ['name', 'password', 'expiration'];
  const creation = optionalStringArray(raw, 'creation_statements', CODE, STATEMENT_HINT);
  if (creation) {
    role.creation_statements = validateStatements(
      creation,
      'creation_statements',
      all,
      ['name', 'password'],
      CODE,
      STATEMENT_HINT,
    );
  }
  const revocation = optionalStringArray(raw, 'revocation_statements', CODE, STATEMENT_HINT);
  if (revocation) {
    role.revocation_statements = validateStatements(
      revocation,
      'revocation_statements',
      ['name'],
      ['name'],
      CODE,
      STATEMENT_HINT,
    );
  }
  const renew = optionalStringArray(raw, 'renew_statements', CODE, STATEMENT_HINT);
  if (renew) {
    role.renew_statements = validateStatements(
      renew,
      'renew_statements',
      ['name', 'expiration'],
      ['name'],
      CODE,
      STATEMENT_HINT,
    );
  }
  const grants = optionalStringArray(raw, 'grants', CODE, GRANT_HINT);
  if (grants) {
    role.grants = grants.map((g) => {
      const text = validateGrantText(g, CODE, GRANT_HINT);
      if (!/\sON\s/i.test(` ${text} `))
        throw badRequest(CODE, 'A MySQL grant names privileges ON an object', GRANT_HINT);
      if (text.includes('"'))
        throw badRequest(CODE, 'Quote MySQL names with backticks, not double quotes', GRANT_HINT);
      return text;
    });
  }
  if (raw.username_template !== undefined && raw.username_template !== null) {
    role.username_template = validateUsernameTemplate(
      requireString(raw, 'username_template', CODE, DEFAULT_USERNAME_TEMPLATE, 256),
      MYSQL_MAX_USERNAME,
    );
  }
  return role;
}

export function roleOrDefault(role: unknown): MysqlRole {
  return role && typeof role === 'object' ? (role as MysqlRole) : {};
}

export function creationTemplates(role: MysqlRole): string[] {
  return [
    ...(role.creation_statements ?? [DEFAULT_CREATION]),
    ...(role.grants ?? []).map((g) => `GRANT ${g} TO {{name}}@'%'`),
  ];
}

/**
 * A MySQL string literal that is correct in the session's SQL mode: with NO_BACKSLASH_ESCAPES a
 * backslash is an ordinary character and only `'` needs doubling; otherwise mysql2's escaping.
 */
export function quoteString(value: string, noBackslashEscapes: boolean): string {
  if (noBackslashEscapes) return `'${value.replace(/'/g, "''")}'`;
  return mysql.escape(value);
}

/** `'2030-01-02 03:04:05'` (UTC) — the form DATETIME columns and MySQL functions accept. */
export const mysqlTimestamp = (d: Date) =>
  d
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');

export function render(
  templates: string[],
  v: { name: string; password?: string; expiration?: Date },
  noBackslashEscapes: boolean,
): string[] {
  const q = (s: string) => quoteString(s, noBackslashEscapes);
  const quoted: Partial<Record<Placeholder, string>> = {
    name: q(v.name),
    ...(v.password !== undefined ? { password: q(v.password) } : {}),
    ...(v.expiration !== undefined ? { expiration: q(mysqlTimestamp(v.expiration)) } : {}),
  };
  return templates.map((t) => renderStatement(t, quoted));
}
