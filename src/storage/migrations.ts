import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import { CustodyError } from '../errors.js';

/**
 * Versioned schema migrations, run on every start. Names sort in order; a migration, once released,
 * never changes — a schema change is a new entry. Column types are the portable subset of SQLite
 * and PostgreSQL (text, integer, bigint).
 */
const migrations: Record<string, Migration> = {
  '0001_core': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('custody_meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('environments')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('retention_days', 'integer', (c) => c.notNull())
        .addColumn('purge_protection', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('secrets')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('current_seq', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .addColumn('purge_at', 'bigint')
        .addUniqueConstraint('secrets_env_name', ['env', 'name'])
        .execute();
      await db.schema.createIndex('secrets_purge_at').on('secrets').column('purge_at').execute();
      await db.schema
        .createTable('secret_versions')
        .addColumn('secret_id', 'text', (c) => c.notNull().references('secrets.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('version_id', 'text', (c) => c.notNull().unique())
        .addColumn('ciphertext', 'text', (c) => c.notNull())
        .addColumn('content_type', 'text')
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('not_before', 'bigint')
        .addColumn('expires_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('secret_versions_pk', ['secret_id', 'seq'])
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('accessor', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('parent_accessor', 'text')
        .addColumn('policies', 'text', (c) => c.notNull())
        .addColumn('identity_id', 'text')
        .addColumn('display_name', 'text', (c) => c.notNull())
        .addColumn('meta', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('max_expires_at', 'bigint')
        .addColumn('ttl_seconds', 'integer', (c) => c.notNull())
        .addColumn('renewable', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('tokens_parent').on('tokens').column('parent_accessor').execute();
      await db.schema.createIndex('tokens_expires').on('tokens').column('expires_at').execute();
    },
  },
};

export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  const migrator = new Migrator({ db, provider, migrationTableName: 'custody_migrations' });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new CustodyError(
      'MigrationFailed',
      500,
      `Schema migration ${failed} failed: ${(error as Error).message}`,
      'The storage may be from a newer Custody version or unreachable; check the storage URL.',
    );
  }
}
