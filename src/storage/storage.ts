import Sqlite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { CustodyError } from '../errors.js';
import { migrateToLatest } from './migrations.js';
import type { Database } from './tables.js';

export type { Database } from './tables.js';

/** The one storage interface. Domains query through `db` and group writes with `transaction`. */
export interface Storage {
  readonly kind: 'sqlite' | 'postgres';
  readonly db: Kysely<Database>;
  /** A description safe to print: the file path or the URL without its password. */
  readonly description: string;
  transaction<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// BIGINT (int8) columns hold epoch milliseconds, well inside 2^53.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export function describeStorageUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable storage URL>';
  }
}

export async function openStorage(target: string): Promise<Storage> {
  const isPostgres = /^postgres(ql)?:\/\//i.test(target);
  let db: Kysely<Database>;
  let description: string;
  if (isPostgres) {
    const pool = new pg.Pool({ connectionString: target, max: 10, connectionTimeoutMillis: 10_000 });
    // Idle-client errors (server restart) must not crash the broker; the next query reconnects.
    pool.on('error', () => {});
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    description = describeStorageUrl(target);
  } else {
    const file = target.replace(/^sqlite:(\/\/)?/i, '');
    const sqlite = new Sqlite(file);
    sqlite.pragma('journal_mode = WAL');
    // FULL: a commit is fsynced before it is acknowledged, so acknowledged writes survive kill -9.
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    description = `sqlite:${file}`;
  }
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy().catch(() => {});
    if (err instanceof CustodyError) throw err;
    throw new CustodyError(
      'StorageUnavailable',
      503,
      `Cannot open storage ${description}: ${(err as Error).message}`,
      'Check that the database is running and the URL, user and password are right.',
    );
  }
  return {
    kind: isPostgres ? 'postgres' : 'sqlite',
    db,
    description,
    transaction: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}
