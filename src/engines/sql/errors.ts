import { CustodyError } from '../../errors.js';

/**
 * Backend errors of the SQL engines as CustodyErrors: one classification (login refused, unknown
 * database, missing privilege, failed statement, unreachable) whose messages never hold a secret.
 * Each dialect only says how its driver reports those cases.
 */

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

/** What a driver error means, as far as the dialect can tell from its codes. */
export type BackendErrorKind =
  | { kind: 'auth' }
  | { kind: 'no-database' }
  | { kind: 'privilege' }
  /** `ref` names the backend's error, e.g. `SQLSTATE 42P01` or `error 1064`. */
  | { kind: 'statement'; ref: string };

/** How one SQL dialect reports errors. */
export interface ErrorDialect {
  /** The product as messages name it: `PostgreSQL`, `MySQL`. */
  product: string;
  /** The server's message text (MySQL's driver keeps it apart from its own). */
  messageOf(err: unknown): unknown;
  /** Checked before the network check: a dialect's codes win over a look-alike network code. */
  classify(err: unknown): BackendErrorKind | undefined;
  /** What to check when the admin login is refused. */
  authHint: string;
  /** The privileges the admin user needs. */
  privilegeHint: string;
}

export interface FailureContext {
  dialect: ErrorDialect;
  urlHost: string;
  port: number;
  database: string;
  adminUser: string;
  /** Every secret the message might quote: the admin password, passwords being set. */
  secrets: readonly (string | undefined)[];
}

/** Any backend error as a CustodyError whose message holds no secret. */
export function backendFailure(err: unknown, phase: Phase, what: string, c: FailureContext): CustodyError {
  if (err instanceof CustodyError) return err;
  const d = c.dialect;
  const where = `${d.product} at ${c.urlHost}:${c.port}`;
  const text = scrubMessage(d.messageOf(err), c.secrets);
  const found = d.classify(err);
  switch (found?.kind) {
    case 'auth':
      return new CustodyError(
        'EngineAuthenticationFailed',
        statusFor(phase, 502),
        `${where} refused the login of admin user ${JSON.stringify(c.adminUser)}`,
        d.authHint,
      );
    case 'no-database':
      return new CustodyError(
        'EngineUnreachable',
        statusFor(phase, 502),
        `${where} has no database ${JSON.stringify(c.database)}`,
        'Fix the database name at the end of connection_url.',
      );
    case 'privilege':
      return new CustodyError(
        'EngineInsufficientPrivilege',
        statusFor(phase, 502),
        `${what}: the admin user lacks a privilege: ${text}`,
        d.privilegeHint,
      );
    case 'statement':
      return new CustodyError(
        'EngineStatementFailed',
        statusFor(phase, 502),
        `${what} failed on ${where}: ${text} (${found.ref})`,
        'Check the role statements and grants against the database.',
      );
  }
  if (isNetworkError(err)) {
    const code = (err as { code?: string } | null)?.code;
    return new CustodyError(
      'EngineUnreachable',
      statusFor(phase, 503),
      `Could not reach ${where}${code ? ` (${code})` : ''}: ${text}`,
      'Check the host, port and TLS settings in connection_url, and that the server is up and reachable from the broker.',
    );
  }
  return new CustodyError(
    'EngineError',
    statusFor(phase, 502),
    `${what} failed on ${where}: ${text}`,
    'Check the engine configuration and the database server log.',
  );
}

/** The user name a lease's revocation data holds; `fits` is the dialect's length rule. */
export function revocationUsername(
  raw: Record<string, unknown>,
  product: string,
  fits: (username: string) => boolean,
): string {
  const username = raw?.username;
  if (typeof username !== 'string' || username.length === 0 || !fits(username)) {
    throw new CustodyError(
      'InvalidRevocationData',
      400,
      `The lease has no valid ${product} user name to revoke`,
      'The lease record is damaged; remove the user by hand and force-revoke the lease.',
    );
  }
  return username;
}

/** A lease's user is gone from the backend (removed outside Custody): renewal cannot help. */
export function credentialGone(what: string, username: string): CustodyError {
  return new CustodyError(
    'EngineCredentialNotFound',
    404,
    `${what} ${JSON.stringify(username)} no longer exists`,
    'The credential was removed outside Custody; issue a new one.',
  );
}

/** A static role names a user the backend does not have. */
export function userNotFound(what: string, username: string): CustodyError {
  return new CustodyError(
    'EngineUserNotFound',
    404,
    `${what} ${JSON.stringify(username)} does not exist`,
    'Create the user first, or fix the static role.',
  );
}
