import type { SqlDialect } from '../sql/engine.js';
import { URL_FORM } from './config.js';

/** Server errors that mean the admin user lacks a privilege (not that the statement is wrong). */
const ACCESS_DENIED = new Set([
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  'ER_KILL_DENIED_ERROR',
  'ER_CANT_CREATE_USER_WITH_GRANT',
  'ER_PROCACCESS_DENIED_ERROR',
]);

type Mysql2Error = {
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  message?: string;
};

/** How mysql2 reports MySQL/MariaDB errors, and what the shared SQL plumbing says about them. */
export const MYSQL: SqlDialect = {
  product: 'MySQL',
  url: URL_FORM,
  scheme: 'mysql',
  tlsQuery: '?ssl-mode=required',
  messageOf(err) {
    const e = err as Mysql2Error | null;
    return e?.sqlMessage ?? e?.message;
  },
  classify(err) {
    const e = err as Mysql2Error | null;
    if (e?.code === 'ER_ACCESS_DENIED_ERROR' || e?.code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR')
      return { kind: 'auth' };
    if (e?.code === 'ER_BAD_DB_ERROR') return { kind: 'no-database' };
    if (e?.code && ACCESS_DENIED.has(e.code)) return { kind: 'privilege' };
    // A server error (not one of the client's own): the statement itself failed.
    if (typeof e?.errno === 'number' && e.sqlState) return { kind: 'statement', ref: `error ${e.errno}` };
    return undefined;
  },
  authHint: 'Check username and password, and that the user may connect from the broker host.',
  privilegeHint:
    'The admin user needs CREATE USER, PROCESS, CONNECTION ADMIN (or SUPER) and the grant option on what roles grant.',
};
