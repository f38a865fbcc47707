import { badRequest, CustodyError } from '../../errors.js';

/**
 * Helpers shared by the SQL engines (PostgreSQL here, MySQL/MariaDB imports them): strict parsing
 * of API input, statement templates with quoted placeholders, and error messages scrubbed of secrets.
 */

export type Raw = Record<string, unknown>;

export function rejectUnknownKeys(raw: Raw, allowed: readonly string[], what: string, code: string): void {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest(code, `The ${what} must be a JSON object`, `Fields: ${allowed.join(', ')}.`);
  }
  const unknown = Object.keys(raw).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw badRequest(
      code,
      `Unknown ${what} field${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}`,
      `Fields: ${allowed.join(', ')}.`,
    );
  }
}

export function requireString(raw: Raw, key: string, code: string, hint: string, maxLength = 1024): string {
  const v = raw[key];
  if (typeof v !== 'string' || v.length === 0)
    throw badRequest(code, `${key} is required (a non-empty string)`, hint);
  if (v.length > maxLength) throw badRequest(code, `${key} is longer than ${maxLength} characters`, hint);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(v)) throw badRequest(code, `${key} contains control characters`, hint);
  return v;
}

export function optionalBoolean(raw: Raw, key: string, code: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean')
    throw badRequest(code, `${key} must be true or false`, `Example: "${key}": ${fallback}`);
  return v;
}

export function optionalInteger(
  raw: Raw,
  key: string,
  code: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw badRequest(
      code,
      `${key} must be an integer from ${min} to ${max}`,
      `Example: "${key}": ${fallback}`,
    );
  }
  return v;
}

export function optionalStringArray(raw: Raw, key: string, code: string, hint: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length === 0 || v.length > 64) {
    throw badRequest(
      code,
      `${key} must be a non-empty list of at most 64 strings (omit it for the default)`,
      hint,
    );
  }
  for (const s of v) {
    if (typeof s !== 'string' || s.trim().length === 0 || s.length > 8192) {
      throw badRequest(code, `${key} entries must be non-empty strings of at most 8192 characters`, hint);
    }
  }
  return [...v];
}

// ---------------------------------------------------------------------------------------------
// Connection URLs

export interface ParsedUrl {
  host: string;
  /** `host` as it goes back into a URL (IPv6 in brackets). */
  urlHost: string;
  port: number;
  database: string;
  params: URLSearchParams;
}

/**
 * Parses `scheme://host[:port]/db[?params]`. Credentials are separate config fields: a URL with a
 * user or password in it is refused (and never echoed back, since it may hold a password).
 */
export function parseConnectionUrl(
  value: string,
  schemes: readonly string[],
  defaultPort: number,
  example: string,
  code: string,
): ParsedUrl {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badRequest(code, 'connection_url is not a valid URL', `Example: ${example}`);
  }
  if (url.password) {
    throw badRequest(
      code,
      'connection_url must not contain a password',
      `Give the URL without credentials (${example}) and put the admin user and password in the username and password fields.`,
    );
  }
  if (url.username) {
    throw badRequest(
      code,
      'connection_url must not contain a user name',
      `Give the URL without credentials (${example}) and put the admin user in the username field.`,
    );
  }
  if (!schemes.includes(url.protocol.replace(/:$/, ''))) {
    throw badRequest(
      code,
      `connection_url must start with ${schemes.map((s) => `${s}://`).join(' or ')}`,
      `Example: ${example}`,
    );
  }
  if (!url.hostname) throw badRequest(code, 'connection_url has no host', `Example: ${example}`);
  if (url.hash) throw badRequest(code, 'connection_url must not have a #fragment', `Example: ${example}`);
  const port = url.port ? Number(url.port) : defaultPort;
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw badRequest(code, 'connection_url has a badly encoded database name', `Example: ${example}`);
  }
  if (database.includes('/'))
    throw badRequest(code, 'connection_url path must be just the database name', `Example: ${example}`);
  const urlHost = url.hostname;
  const host = urlHost.startsWith('[') ? urlHost.slice(1, -1) : urlHost;
  return { host, urlHost, port, database, params: url.searchParams };
}

// ---------------------------------------------------------------------------------------------
// Statement templates

export type Placeholder = 'name' | 'password' | 'expiration';
const PLACEHOLDER = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;

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
    if (v === undefined)
      throw new CustodyError('InvalidRoleConfig', 400, `Placeholder {{${key}}} has no value here`);
    return v;
  });
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

// ---------------------------------------------------------------------------------------------
// Errors

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);

export function isNetworkError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /timeout|timed out|Connection terminated|connection closed|Connection lost|socket hang up|ECONNREFUSED|getaddrinfo/i.test(
    msg,
  );
}

/**
 * A backend error message made safe to show: secrets (and their quoted forms) replaced, syntax-error
 * excerpts of the statement (which may hold a password) dropped, URL credentials removed, length capped.
 */
export function scrubMessage(message: unknown, secrets: readonly (string | undefined)[]): string {
  let msg = typeof message === 'string' ? message : 'unknown error';
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    const forms = new Set([
      s,
      s.replace(/'/g, "''"),
      s.replace(/\\/g, '\\\\').replace(/'/g, "\\'"),
      encodeURIComponent(s),
    ]);
    for (const f of forms) msg = msg.split(f).join('[redacted]');
  }
  msg = msg
    .replace(/ (at or )?near (".*?"|'.*'|\S+)( at line \d+)?/gs, ' near [statement text omitted]$3')
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1[redacted]@')
    .replace(/\s+/g, ' ')
    .trim();
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg;
}

export type Phase = 'verify' | 'runtime';

/** 400 while configuring (the config is what is wrong), 503/502 once running (the backend is). */
export const statusFor = (phase: Phase, runtime: number) => (phase === 'verify' ? 400 : runtime);

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
    code: string;
    statementHint: string;
    grantHint: string;
    maxUsername: number;
    checkGrant: (text: string) => void;
    validateTemplate: (template: string, maxLength: number) => string;
    defaultTemplate: string;
  },
): SqlRole {
  rejectUnknownKeys(raw, SQL_ROLE_FIELDS, o.what, o.code);
  const role: SqlRole = {};
  const lists: [keyof SqlRole, Placeholder[], Placeholder[]][] = [
    ['creation_statements', ['name', 'password', 'expiration'], ['name', 'password']],
    ['revocation_statements', ['name'], ['name']],
    ['renew_statements', ['name', 'expiration'], ['name']],
  ];
  for (const [key, allowed, required] of lists) {
    const list = optionalStringArray(raw, key, o.code, o.statementHint);
    if (list)
      (role as Record<string, unknown>)[key] = validateStatements(
        list,
        key,
        allowed,
        required,
        o.code,
        o.statementHint,
      );
  }
  const grants = optionalStringArray(raw, 'grants', o.code, o.grantHint);
  if (grants) {
    role.grants = grants.map((g) => {
      const text = validateGrantText(g, o.code, o.grantHint);
      o.checkGrant(text);
      return text;
    });
  }
  if (raw.username_template !== undefined && raw.username_template !== null) {
    role.username_template = o.validateTemplate(
      requireString(raw, 'username_template', o.code, o.defaultTemplate, 256),
      o.maxUsername,
    );
  }
  return role;
}
