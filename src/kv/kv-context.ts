import type { Selectable } from 'kysely';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest } from '../errors.js';
import type { Database, Storage } from '../storage/storage.js';
import type { SecretTable, SecretVersionTable } from '../storage/tables.js';
import * as E from './kv-errors.js';
import { validateEnvName, validateSecretName } from './names.js';
import type { DeletedSecret, Environment, SecretSummary, SecretVersionMeta } from './types.js';

export type SecretRow = Selectable<SecretTable>;
export type VersionRow = Selectable<SecretVersionTable>;

/** A secret row found by name, with its environment (deletes need its retention, purges its protection). */
export interface FoundSecret {
  environment: Environment;
  secret: SecretRow;
}

// Binds each ciphertext to its secret and version, so a row copied elsewhere will not decrypt.
export const aadFor = (secretId: string, seq: number) => `custody:secret:${secretId}:${seq}`;

export const toEnv = (r: Selectable<Database['environments']>): Environment => ({
  name: r.name,
  retentionDays: r.retention_days,
  purgeProtection: r.purge_protection === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toMeta = (s: Pick<SecretRow, 'env' | 'name'>, v: VersionRow): SecretVersionMeta => ({
  env: s.env,
  name: s.name,
  version: v.version_id,
  seq: v.seq,
  enabled: v.enabled === 1,
  notBefore: v.not_before,
  expiresAt: v.expires_at,
  contentType: v.content_type,
  tags: JSON.parse(v.tags) as Record<string, string>,
  createdAt: v.created_at,
  updatedAt: v.updated_at,
});

/** What the KV modules share: storage, the barrier and the lookups every operation starts with. */
export type KvContext = ReturnType<typeof createKvContext>;

export function createKvContext(storage: Storage, barrier: Barrier) {
  const { db } = storage;

  async function requireEnv(name: string): Promise<Environment> {
    validateEnvName(name);
    const row = await db.selectFrom('environments').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw E.envNotFound(name);
    return toEnv(row);
  }

  // The environment is checked before the name, so a missing environment wins over a bad name.
  async function lookup(env: string, name: string) {
    const environment = await requireEnv(env);
    validateSecretName(name);
    const secret = await db
      .selectFrom('secrets')
      .selectAll()
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirst();
    return { environment, secret };
  }

  /** A secret that exists and is not soft-deleted. */
  async function liveSecret(env: string, name: string): Promise<FoundSecret> {
    const { environment, secret } = await lookup(env, name);
    if (!secret) throw E.secretNotFound(env, name);
    if (secret.deleted_at !== null) throw E.secretDeleted(env, name);
    return { environment, secret };
  }

  /** A secret that is soft-deleted and not yet purged. */
  async function deletedSecret(env: string, name: string): Promise<FoundSecret> {
    const { environment, secret } = await lookup(env, name);
    if (!secret || secret.deleted_at === null) throw E.deletedNotFound(env, name);
    return { environment, secret };
  }

  async function findVersion(s: SecretRow, version?: string): Promise<VersionRow> {
    let q = db.selectFrom('secret_versions').selectAll().where('secret_id', '=', s.id);
    if (version === undefined || version === '' || version === 'latest')
      q = q.where('seq', '=', s.current_seq);
    else if (/^[0-9]{1,9}$/.test(version)) q = q.where('seq', '=', Number(version));
    else if (/^[0-9a-f]{32}$/.test(version)) q = q.where('version_id', '=', version);
    else {
      throw badRequest(
        'InvalidVersion',
        'A version is its 32-character id or its number',
        'See `custody kv versions`.',
      );
    }
    const v = await q.executeTakeFirst();
    if (!v) throw E.versionNotFound(s.env, s.name, version ?? 'latest');
    return v;
  }

  async function summary(s: SecretRow): Promise<SecretSummary> {
    const v = await findVersion(s);
    const count = await db
      .selectFrom('secret_versions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('secret_id', '=', s.id)
      .executeTakeFirstOrThrow();
    return { ...toMeta(s, v), versions: Number(count.n) };
  }

  async function deleted(s: SecretRow): Promise<DeletedSecret> {
    return { ...(await summary(s)), deletedAt: s.deleted_at!, scheduledPurgeAt: s.purge_at! };
  }

  return { storage, barrier, db, requireEnv, liveSecret, deletedSecret, findVersion, summary, deleted };
}
