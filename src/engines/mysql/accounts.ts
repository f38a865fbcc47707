import { quoteString } from './statements.js';

/**
 * MySQL accounts are `user@host`: one user name may exist for several hosts. These helpers find,
 * lock, drop and disconnect every account of a user name, through the catalog tables.
 */

/** One checked-out connection and the SQL mode that decides how literals are quoted. */
export interface Session {
  /** The session's sql_mode has NO_BACKSLASH_ESCAPES (decides how string literals are quoted). */
  nbe: boolean;
  sql(sql: string, params?: string[]): Promise<any[]>;
}

const ER_NO_SUCH_THREAD = 1094;

/** `'user'@'host'` quoted for the session. */
export const accountName = (s: Session, user: string, host: string) =>
  `${quoteString(user, s.nbe)}@${quoteString(host, s.nbe)}`;

/**
 * The hosts `username` exists for (usually just '%'). An admin without SELECT on mysql.user
 * cannot tell: then assume '%' (the default statements use IF EXISTS, so that stays idempotent).
 */
export async function hostsOf(s: Session, username: string): Promise<string[]> {
  try {
    const rows = await s.sql('SELECT Host AS h FROM mysql.user WHERE User = ?', [username]);
    return rows.map((r) => String(r.h));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ER_TABLEACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') return ['%'];
    throw err;
  }
}

export async function dropEverywhere(s: Session, username: string, hosts?: string[]): Promise<void> {
  for (const host of hosts ?? (await hostsOf(s, username))) {
    await s.sql(`DROP USER IF EXISTS ${accountName(s, username, host)}`);
  }
}

/** Ends every session of `username` except this one; one that ended meanwhile is fine. */
export async function killSessions(s: Session, username: string): Promise<void> {
  const rows = await s.sql(
    'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
    [username],
  );
  for (const { id } of rows) {
    try {
      await s.sql(`KILL CONNECTION ${Number(id)}`);
    } catch (err) {
      if ((err as { errno?: number }).errno !== ER_NO_SUCH_THREAD) throw err;
    }
  }
}

/** The account the session authenticated as (`CURRENT_USER()` is `user@host`). */
export async function currentAccount(s: Session): Promise<{ user: string; host: string }> {
  const [row] = await s.sql('SELECT CURRENT_USER() AS u');
  const current = String(row?.u ?? '');
  const at = current.lastIndexOf('@');
  return { user: current.slice(0, at), host: current.slice(at + 1) };
}
