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
  '0002_identity_rbac': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('tokens').addColumn('env', 'text').execute();
      await db.schema.alterTable('tokens').addColumn('actor_identity_id', 'text').execute();
      await db.schema.alterTable('tokens').addColumn('auth_method', 'text').execute();
      await db.schema
        .createTable('identities')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('login_role', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_login_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('identities_env_method_name', ['env', 'auth_method', 'name'])
        .execute();
      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('groups_env_name', ['env', 'name'])
        .execute();
      await db.schema
        .createTable('group_members')
        .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id').onDelete('cascade'))
        .addColumn('source', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'identity_id'])
        .execute();
      await db.schema
        .createIndex('group_members_identity')
        .on('group_members')
        .column('identity_id')
        .execute();
      await db.schema
        .createTable('roles')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('actions', 'text', (c) => c.notNull())
        .addColumn('builtin', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('assignments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('principal_type', 'text', (c) => c.notNull())
        .addColumn('principal_id', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull().references('roles.name'))
        .addColumn('scope_kind', 'text', (c) => c.notNull())
        .addColumn('scope_path', 'text', (c) => c.notNull())
        .addColumn('allow_management', 'integer', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('assignments_principal')
        .on('assignments')
        .columns(['principal_id', 'env'])
        .execute();
      await db.schema
        .createTable('auth_methods')
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('auth_methods_pk', ['env', 'name'])
        .execute();
      await db.schema
        .createTable('auth_roles')
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('lookup_key', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('auth_roles_pk', ['env', 'method', 'name'])
        .execute();
      await db.schema.createIndex('auth_roles_lookup').on('auth_roles').column('lookup_key').execute();
      await db.schema
        .createTable('approle_secret_ids')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('accessor', 'text', (c) => c.notNull().unique())
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('cidrs', 'text', (c) => c.notNull())
        .addColumn('uses_left', 'integer')
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .execute();
    },
  },
  '0003_engines_leases': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('engines')
        .addColumn('env', 'text', (c) => c.notNull().references('environments.name'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('engines_pk', ['env', 'name'])
        .execute();
      await db.schema
        .createTable('engine_roles')
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('ttl_seconds', 'integer', (c) => c.notNull())
        .addColumn('max_ttl_seconds', 'integer', (c) => c.notNull())
        .addColumn('secret', 'text')
        .addColumn('rotation_period_seconds', 'integer')
        .addColumn('last_rotated_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('engine_roles_pk', ['env', 'engine', 'name'])
        .execute();
      await db.schema
        .createTable('leases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('engine', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('identity_id', 'text')
        .addColumn('token_accessor', 'text')
        .addColumn('username', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('max_expires_at', 'bigint', (c) => c.notNull())
        .addColumn('last_renewed_at', 'bigint')
        .addColumn('renewable', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('claimed_until', 'bigint')
        .addColumn('revocation', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // The reaper's one query: unfinished leases whose next attempt is due.
      await db.schema.createIndex('leases_due').on('leases').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('leases_identity').on('leases').column('identity_id').execute();
    },
  },
  '0006_storage_creds': {
    async up(db: Kysely<any>) {
      // Whether revoking the lease ends the credential before its expiry (STS sessions and plain
      // SAS tokens cannot be withdrawn): existing leases are all database/MLflow users, so 1.
      await db.schema
        .alterTable('leases')
        .addColumn('revocable', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
    },
  },
};

export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  // Unordered: features land in parallel, each with its own independent migration, so a database
  // may have a later-numbered one applied before an earlier-numbered one arrives.
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: 'custody_migrations',
    allowUnorderedMigrations: true,
  });
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
