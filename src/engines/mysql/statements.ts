import mysql from 'mysql2/promise';
import { badRequest } from '../../errors.js';
import type { Raw } from '../sql/input.js';
import {
  parseSqlRole,
  type Quoting,
  renderStatements,
  SQL_ROLE_FIELDS,
  type SqlRole,
  type StatementValues,
  creationTemplates as sqlCreationTemplates,
} from '../sql/statements.js';

/** MySQL allows 32 characters in a user name (MariaDB 80): use the smaller. */
export const MYSQL_MAX_USERNAME = 32;

/**
 * A dynamic role of the MySQL/MariaDB engine. Omitted statement lists mean "the safe default":
 * creation `CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}` plus one `GRANT … TO {{name}}@'%'`
 * per grant; revocation: lock the account, end its sessions, `DROP USER IF EXISTS` on every host.
 * MySQL has no VALID UNTIL, so renewal does nothing unless `renew_statements` say otherwise: the
 * lease's expiry is enforced by revoking it.
 */
export type MysqlRole = SqlRole;

export const ROLE_FIELDS = SQL_ROLE_FIELDS;

export const DEFAULT_CREATION = "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}";

const CODE = 'InvalidRoleConfig';
const STATEMENT_HINT =
  "Placeholders are substituted already quoted as string literals — do not add quotes around them. Example: CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}";
const GRANT_HINT =
  'Examples: "SELECT ON app.*", "SELECT, INSERT ON app.orders", "EXECUTE ON PROCEDURE app.report".';

export function parseMysqlRole(raw: Raw): MysqlRole {
  return parseSqlRole(raw, {
    what: 'MySQL role',
    statementHint: STATEMENT_HINT,
    grantHint: GRANT_HINT,
    maxUsername: MYSQL_MAX_USERNAME,
    checkGrant(text) {
      if (!/\sON\s/i.test(` ${text} `))
        throw badRequest(CODE, 'A MySQL grant names privileges ON an object', GRANT_HINT);
      if (text.includes('"'))
        throw badRequest(CODE, 'Quote MySQL names with backticks, not double quotes', GRANT_HINT);
    },
  });
}

export function creationTemplates(role: MysqlRole): string[] {
  return sqlCreationTemplates(role, DEFAULT_CREATION, (g) => `GRANT ${g} TO {{name}}@'%'`);
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

/** Every placeholder, the user name too, is a string literal in MySQL (`'name'@'%'`). */
export function render(templates: string[], v: StatementValues, noBackslashEscapes: boolean): string[] {
  const literal = (s: string) => quoteString(s, noBackslashEscapes);
  const quoting: Quoting = { name: literal, literal, timestamp: mysqlTimestamp };
  return renderStatements(templates, v, quoting);
}
