import { badRequest, CustodyError } from '../../errors.js';
import { optionalStringArray, type Raw, rejectUnknownKeys, requireString } from './input.js';
import { DEFAULT_USERNAME_TEMPLATE, validateUsernameTemplate } from './username.js';

/**
 * The role shape and statement templates every SQL engine shares (PostgreSQL, MySQL/MariaDB):
 * placeholders are substituted with values the dialect has already quoted, grants are checked as
 * text here and by the dialect's own rules.
 */

export type Placeholder = 'name' | 'password' | 'expiration';
const PLACEHOLDER = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;
const CODE = 'InvalidRoleConfig';

/**
 * Checks statement templates: only the `allowed` placeholders, and each of `required` used by at
 * least one statement.
 */
export function validateStatements(
  statements: string[],
  field: string,
  allowed: readonly Placeholder[],
  required: readonly Placeholder[],
  code: string,
  hint: string,
): string[] {
  const seen = new Set<string>();
  for (const s of statements) {
    for (const m of s.matchAll(PLACEHOLDER)) {
      if (!(allowed as readonly string[]).includes(m[1])) {
        throw badRequest(
          code,
          `${field} uses {{${m[1]}}}, which is not available there`,
          `Placeholders in ${field}: ${allowed.map((p) => `{{${p}}}`).join(', ')}. ${hint}`,
        );
      }
      seen.add(m[1]);
    }
  }
  for (const r of required) {
    if (!seen.has(r)) throw badRequest(code, `${field} must use {{${r}}}`, hint);
  }
  return statements;
}

/**
 * Substitutes placeholders in one pass with values the caller has ALREADY QUOTED for the backend
 * (identifier or string literal), so a value can never end the statement or add another one.
 */
export function renderStatement(template: string, quoted: Partial<Record<Placeholder, string>>): string {
  return template.replace(PLACEHOLDER, (_whole, key: string) => {
    const v = quoted[key as Placeholder];
    if (v === undefined) throw new CustodyError(CODE, 400, `Placeholder {{${key}}} has no value here`);
    return v;
  });
}

/** How a dialect quotes placeholder values: the user name, string literals, and a point in time. */
export interface Quoting {
  name(value: string): string;
  literal(value: string): string;
  /** The expiration as the text the backend parses (then quoted as a literal). */
  timestamp(value: Date): string;
}

export interface StatementValues {
  name: string;
  password?: string;
  expiration?: Date;
}

export function renderStatements(templates: string[], v: StatementValues, q: Quoting): string[] {
  const quoted: Partial<Record<Placeholder, string>> = {
    name: q.name(v.name),
    ...(v.password !== undefined ? { password: q.literal(v.password) } : {}),
    ...(v.expiration !== undefined ? { expiration: q.literal(q.timestamp(v.expiration)) } : {}),
  };
  return templates.map((t) => renderStatement(t, quoted));
}

/**
 * A grant shorthand as the role definition gives it (`SELECT ON ALL TABLES IN SCHEMA public`,
 * `SELECT, INSERT ON app.*`). Custody appends `TO <user>`; the text is the operator's, but it must
 * stay one plain clause: no statement separators, comments or string literals.
 */
export function validateGrantText(grant: string, code: string, hint: string): string {
  const g = grant.trim();
  if (/[;'\\]|--|\/\*|\*\/|#/.test(g)) {
    throw badRequest(code, 'A grant must not contain ; quotes, backslashes or comments', hint);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(g)) throw badRequest(code, 'A grant must be one line', hint);
  if (/\bTO\b/i.test(g)) {
    throw badRequest(code, 'A grant must not say TO …: Custody grants it to the new user', hint);
  }
  if (/^\s*GRANT\b/i.test(g)) throw badRequest(code, 'Write a grant without the GRANT keyword', hint);
  return g;
}

/** The role shape every SQL engine shares (PostgreSQL, MySQL/MariaDB). */
export interface SqlRole {
  creation_statements?: string[];
  revocation_statements?: string[];
  renew_statements?: string[];
  grants?: string[];
  username_template?: string;
}

export const SQL_ROLE_FIELDS = [
  'creation_statements',
  'revocation_statements',
  'renew_statements',
  'grants',
  'username_template',
] as const;

/**
 * Validates a SQL engine role: statement lists with their allowed/required placeholders, grants
 * (common text checks plus the dialect's own `checkGrant`), and the username template.
 */
export function parseSqlRole(
  raw: Raw,
  o: {
    what: string;
    statementHint: string;
    grantHint: string;
    maxUsername: number;
    checkGrant: (text: string) => void;
  },
): SqlRole {
  rejectUnknownKeys(raw, SQL_ROLE_FIELDS, o.what, CODE);
  const role: SqlRole = {};
  const lists: [keyof SqlRole, Placeholder[], Placeholder[]][] = [
    ['creation_statements', ['name', 'password', 'expiration'], ['name', 'password']],
    ['revocation_statements', ['name'], ['name']],
    ['renew_statements', ['name', 'expiration'], ['name']],
  ];
  for (const [key, allowed, required] of lists) {
    const list = optionalStringArray(raw, key, CODE, o.statementHint);
    if (list)
      (role as Record<string, unknown>)[key] = validateStatements(
        list,
        key,
        allowed,
        required,
        CODE,
        o.statementHint,
      );
  }
  const grants = optionalStringArray(raw, 'grants', CODE, o.grantHint);
  if (grants) {
    role.grants = grants.map((g) => {
      const text = validateGrantText(g, CODE, o.grantHint);
      o.checkGrant(text);
      return text;
    });
  }
  if (raw.username_template !== undefined && raw.username_template !== null) {
    role.username_template = validateUsernameTemplate(
      requireString(raw, 'username_template', CODE, DEFAULT_USERNAME_TEMPLATE, 256),
      o.maxUsername,
    );
  }
  return role;
}

/** A role as stored (JSON) and handed back; tolerates null for "no role" (revocation defaults). */
export function roleOrDefault(role: unknown): SqlRole {
  return role && typeof role === 'object' ? (role as SqlRole) : {};
}

/** The creation statements (or the dialect's default) followed by one statement per grant. */
export function creationTemplates(
  role: SqlRole,
  defaultCreation: string,
  grantStatement: (grant: string) => string,
): string[] {
  return [...(role.creation_statements ?? [defaultCreation]), ...(role.grants ?? []).map(grantStatement)];
}
