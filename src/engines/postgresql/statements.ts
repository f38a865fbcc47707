import pg from 'pg';
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

/** PostgreSQL role names are at most 63 bytes (NAMEDATALEN - 1); generated names are ASCII. */
export const PG_MAX_USERNAME = 63;

/**
 * A dynamic role of the PostgreSQL engine. Omitted statement lists mean "the safe default":
 * creation `CREATE ROLE … LOGIN PASSWORD … VALID UNTIL …` plus `grants`; revocation: lock the
 * role, end its sessions, `REASSIGN OWNED`/`DROP OWNED` and `DROP ROLE`; renewal `ALTER ROLE … VALID UNTIL`.
 */
/** `grants`: `SELECT ON ALL TABLES IN SCHEMA public`, `USAGE ON SCHEMA public`, or role names to grant. */
export type PostgresRole = SqlRole;

export const ROLE_FIELDS = SQL_ROLE_FIELDS;

export const DEFAULT_CREATION =
  'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}';
export const DEFAULT_RENEW = 'ALTER ROLE {{name}} VALID UNTIL {{expiration}}';

const CODE = 'InvalidRoleConfig';
const STATEMENT_HINT =
  'Placeholders are substituted already quoted: {{name}} as an identifier, {{password}} (the SCRAM-SHA-256 verifier unless the engine says password_authentication: password) and {{expiration}} as string literals — do not add quotes around them. Example: CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}';
const GRANT_HINT =
  'Examples: "SELECT ON ALL TABLES IN SCHEMA public", "USAGE ON SCHEMA public", "SELECT, INSERT ON orders", or a role name such as "readers".';
const ROLE_NAME = /^[A-Za-z0-9_$-]{1,63}$/;

export function parsePostgresRole(raw: Raw): PostgresRole {
  return parseSqlRole(raw, {
    what: 'PostgreSQL role',
    statementHint: STATEMENT_HINT,
    grantHint: GRANT_HINT,
    maxUsername: PG_MAX_USERNAME,
    checkGrant(text) {
      // Without ON, a grant is a list of roles to grant membership in.
      if (/\sON\s/i.test(` ${text} `)) return;
      for (const name of text.split(',').map((s) => s.trim())) {
        if (!ROLE_NAME.test(name)) {
          throw badRequest(
            CODE,
            'A grant without ON must be a comma-separated list of role names',
            GRANT_HINT,
          );
        }
      }
    },
  });
}

/** One grant shorthand as a full statement template for `{{name}}`. */
export function grantStatement(grant: string): string {
  if (/\sON\s/i.test(` ${grant} `)) return `GRANT ${grant} TO {{name}}`;
  const roles = grant
    .split(',')
    .map((s) => pg.escapeIdentifier(s.trim()))
    .join(', ');
  return `GRANT ${roles} TO {{name}}`;
}

export function creationTemplates(role: PostgresRole): string[] {
  return sqlCreationTemplates(role, DEFAULT_CREATION, grantStatement);
}

export function renewTemplates(role: PostgresRole): string[] {
  return role.renew_statements ?? [DEFAULT_RENEW];
}

/** Placeholders quoted for PostgreSQL: the name as an identifier, the rest as literals. */
const QUOTING: Quoting = {
  name: (v) => pg.escapeIdentifier(v),
  literal: (v) => pg.escapeLiteral(v),
  timestamp: (d) => d.toISOString(),
};

export function render(templates: string[], v: StatementValues): string[] {
  return renderStatements(templates, v, QUOTING);
}
