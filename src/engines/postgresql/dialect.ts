import type { SqlDialect } from '../sql/engine.js';
import { URL_FORM } from './config.js';

type PgError = { code?: string; message?: string };

/** How node-postgres reports PostgreSQL errors (SQLSTATE codes), for the shared SQL plumbing. */
export const POSTGRESQL: SqlDialect = {
  product: 'PostgreSQL',
  url: URL_FORM,
  scheme: 'postgres',
  tlsQuery: '?sslmode=require',
  messageOf: (err) => (err as PgError | null)?.message,
  classify(err) {
    const code = (err as PgError | null)?.code;
    // invalid_password, invalid_authorization_specification
    if (code === '28P01' || code === '28000') return { kind: 'auth' };
    // invalid_catalog_name
    if (code === '3D000') return { kind: 'no-database' };
    // insufficient_privilege
    if (code === '42501') return { kind: 'privilege' };
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code))
      return { kind: 'statement', ref: `SQLSTATE ${code}` };
    return undefined;
  },
  authHint:
    'Check username and password; the server must allow password login from the broker (pg_hba.conf).',
  privilegeHint:
    'The admin role needs CREATEROLE and the grant option on what roles grant (or be superuser).',
};

/** Catalog contention between concurrent role changes: safe to retry the whole transaction. */
export function isConcurrencyConflict(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e?.code === '40001' ||
    e?.code === '40P01' ||
    (e?.code === 'XX000' && /concurrently/.test(e.message ?? ''))
  );
}
