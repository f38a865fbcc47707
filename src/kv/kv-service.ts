import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest, CustodyError, conflict } from '../errors.js';
import type { Database, Storage } from '../storage/storage.js';
import type { SecretTable, SecretVersionTable } from '../storage/tables.js';
import * as E from './kv-errors.js';
import { validateEnvName, validateSecretName } from './names.js';
import type {
  DeletedSecret,
  Environment,
  Page,
  SecretSummary,
  SecretValue,
  SecretVersionMeta,
  SetSecretInput,
  UpdateVersionInput,
} from './types.js';

export const MAX_VALUE_BYTES = 256 * 1024;
const DAY_MS = 86_400_000;

/** Environments and versioned secrets with Azure Key Vault semantics. Decides nothing about who may call it. */
export interface KvService {
  createEnvironment(input: {
    name: string;
    retentionDays?: number;
    purgeProtection?: boolean;
  }): Promise<Environment>;
  listEnvironments(): Promise<Environment[]>;
  getEnvironment(name: string): Promise<Environment>;
  updateEnvironment(name: string, input: { purgeProtection?: boolean }): Promise<Environment>;
  setSecret(env: string, name: string, input: SetSecretInput): Promise<SecretVersionMeta>;
  getSecret(env: string, name: string, version?: string): Promise<SecretValue>;
  listSecrets(
    env: string,
    opts?: { prefix?: string; limit?: number; cursor?: string },
  ): Promise<Page<SecretSummary>>;
  listVersions(env: string, name: string): Promise<SecretVersionMeta[]>;
  updateVersion(
    env: string,
    name: string,
    version: string | undefined,
    input: UpdateVersionInput,
  ): Promise<SecretVersionMeta>;
  deleteSecret(env: string, name: string): Promise<DeletedSecret>;
  listDeleted(env: string): Promise<DeletedSecret[]>;
  getDeleted(env: string, name: string): Promise<DeletedSecret>;
  recoverSecret(env: string, name: string): Promise<SecretSummary>;
  purgeSecret(env: string, name: string): Promise<void>;
  /** Purges soft-deleted secrets whose retention ended; returns how many. */
  purgeDue(now?: number): Promise<number>;
}

type SecretRow = Selectable<SecretTable>;
type VersionRow = Selectable<SecretVersionTable>;

const aadFor = (secretId: string, seq: number) => `custody:secret:${secretId}:${seq}`;

export function createKvService(storage: Storage, barrier: Barrier): KvService {
  const { db } = storage;

  const toEnv = (r: Selectable<Database['environments']>): Environment => ({
    name: r.name,
    retentionDays: r.retention_days,
    purgeProtection: r.purge_protection === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  });

  const toMeta = (s: SecretRow, v: VersionRow): SecretVersionMeta => ({
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

  async function requireEnv(name: string, q: Kysely<Database> = db): Promise<Environment> {
    validateEnvName(name);
    const row = await q.selectFrom('environments').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw E.envNotFound(name);
    return toEnv(row);
  }

  async function findSecret(
    env: string,
    name: string,
    q: Kysely<Database> = db,
  ): Promise<SecretRow | undefined> {
    return q
      .selectFrom('secrets')
      .selectAll()
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  async function liveSecret(env: string, name: string): Promise<SecretRow> {
    await requireEnv(env);
    validateSecretName(name);
    const s = await findSecret(env, name);
    if (!s) throw E.secretNotFound(env, name);
    if (s.deleted_at !== null) throw E.secretDeleted(env, name);
    return s;
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

  return {
    async createEnvironment({ name, retentionDays = 90, purgeProtection = false }) {
      validateEnvName(name);
      if (!Number.isInteger(retentionDays) || retentionDays < 7 || retentionDays > 90) {
        throw badRequest(
          'InvalidRetention',
          'Retention is a whole number of days from 7 to 90',
          'Omit it for 90.',
        );
      }
      const now = Date.now();
      const res = await db
        .insertInto('environments')
        .values({
          name,
          retention_days: retentionDays,
          purge_protection: purgeProtection ? 1 : 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) {
        throw conflict('EnvironmentExists', `Environment ${name} already exists`, 'Use `custody env show`.');
      }
      return requireEnv(name);
    },

    async listEnvironments() {
      return (await db.selectFrom('environments').selectAll().orderBy('name').execute()).map(toEnv);
    },

    getEnvironment: (name) => requireEnv(name),

    async updateEnvironment(name, { purgeProtection }) {
      const env = await requireEnv(name);
      if (purgeProtection === false && env.purgeProtection) {
        throw conflict(
          'PurgeProtectionLocked',
          'Purge protection cannot be turned off once enabled',
          'This is deliberate: it guarantees deleted secrets stay recoverable for the retention period.',
        );
      }
      if (purgeProtection) {
        await db
          .updateTable('environments')
          .set({ purge_protection: 1, updated_at: Date.now() })
          .where('name', '=', name)
          .execute();
      }
      return requireEnv(name);
    },

    async setSecret(env, name, input) {
      await requireEnv(env);
      validateSecretName(name);
      checkValue(input.value);
      const attrs = checkAttributes(input);
      return storage.transaction(async (trx) => {
        const now = Date.now();
        // Create-if-absent, then lock the row: concurrent writers of one name queue here (SQLite
        // serializes transactions anyway), so each gets the next version number.
        await trx
          .insertInto('secrets')
          .values({
            id: randomUUID(),
            env,
            name,
            current_seq: 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
            purge_at: null,
          })
          .onConflict((oc) => oc.columns(['env', 'name']).doNothing())
          .execute();
        let q = trx.selectFrom('secrets').selectAll().where('env', '=', env).where('name', '=', name);
        if (storage.kind === 'postgres') q = q.forUpdate();
        const s = await q.executeTakeFirstOrThrow();
        if (s.deleted_at !== null) throw E.secretDeleted(env, name);
        if (input.cas !== undefined && input.cas !== s.current_seq)
          throw E.casMismatch(input.cas, s.current_seq);
        const seq = s.current_seq + 1;
        await trx
          .updateTable('secrets')
          .set({ current_seq: seq, updated_at: now })
          .where('id', '=', s.id)
          .execute();
        const v: VersionRow = {
          secret_id: s.id,
          seq,
          version_id: randomBytes(16).toString('hex'),
          ciphertext: barrier.encrypt(input.value, aadFor(s.id, seq)),
          content_type: attrs.contentType ?? null,
          tags: JSON.stringify(attrs.tags ?? {}),
          enabled: attrs.enabled === false ? 0 : 1,
          not_before: attrs.notBefore ?? null,
          expires_at: attrs.expiresAt ?? null,
          created_at: now,
          updated_at: now,
        };
        await trx.insertInto('secret_versions').values(v).execute();
        return toMeta({ ...s, current_seq: seq }, v);
      });
    },

    async getSecret(env, name, version) {
      const s = await liveSecret(env, name);
      const v = await findVersion(s, version);
      const now = Date.now();
      const label = `Version ${v.seq} of ${env}/${name}`;
      if (v.enabled !== 1) throw E.versionUnusable('SecretDisabled', `${label} is disabled`);
      if (v.not_before !== null && v.not_before > now)
        throw E.versionUnusable('SecretNotYetValid', `${label} is not valid yet`);
      if (v.expires_at !== null && v.expires_at <= now)
        throw E.versionUnusable('SecretExpired', `${label} has expired`);
      const value = (await barrier.decrypt(v.ciphertext, aadFor(s.id, v.seq))).toString('utf8');
      return { ...toMeta(s, v), value };
    },

    async listSecrets(env, { prefix, limit = 100, cursor } = {}) {
      await requireEnv(env);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw badRequest('InvalidLimit', 'limit is from 1 to 1000', 'Page with the returned cursor.');
      }
      let q = db
        .selectFrom('secrets as s')
        .innerJoin('secret_versions as v', (j) =>
          j.onRef('v.secret_id', '=', 's.id').onRef('v.seq', '=', 's.current_seq'),
        )
        .selectAll('v')
        .select([
          's.id',
          's.env',
          's.name',
          's.current_seq',
          's.created_at as s_created',
          's.updated_at as s_updated',
        ])
        .where('s.env', '=', env)
        .where('s.deleted_at', 'is', null)
        .orderBy('s.name')
        .limit(limit + 1);
      // Prefixes match whole segments (`db` lists `db` and `db/…`, not `db-admin`), like scopes do.
      const p = prefix?.replace(/\/+$/, '');
      if (p) {
        validateSecretName(p);
        q = q.where((eb) =>
          eb.or([
            eb('s.name', '=', p),
            eb.and([eb('s.name', '>', `${p}/`), eb('s.name', '<', `${p}/\uffff`)]),
          ]),
        );
      }
      if (cursor) q = q.where('s.name', '>', decodeCursor(cursor));
      const rows = await q.execute();
      const page = rows.slice(0, limit);
      return {
        items: page.map((r) => ({
          ...toMeta({ id: r.id, env: r.env, name: r.name, current_seq: r.current_seq } as SecretRow, r),
          versions: r.current_seq,
        })),
        nextCursor:
          rows.length > limit ? Buffer.from(page[page.length - 1].name).toString('base64url') : null,
      };
    },

    async listVersions(env, name) {
      const s = await liveSecret(env, name);
      const rows = await db
        .selectFrom('secret_versions')
        .selectAll()
        .where('secret_id', '=', s.id)
        .orderBy('seq')
        .execute();
      return rows.map((v) => toMeta(s, v));
    },

    async updateVersion(env, name, version, input) {
      const s = await liveSecret(env, name);
      const v = await findVersion(s, version);
      const attrs = checkAttributes(input);
      const patch: Partial<VersionRow> = { updated_at: Date.now() };
      if (attrs.enabled !== undefined) patch.enabled = attrs.enabled ? 1 : 0;
      if (attrs.notBefore !== undefined) patch.not_before = attrs.notBefore;
      if (attrs.expiresAt !== undefined) patch.expires_at = attrs.expiresAt;
      if (attrs.contentType !== undefined) patch.content_type = attrs.contentType;
      if (attrs.tags !== undefined) patch.tags = JSON.stringify(attrs.tags);
      await db
        .updateTable('secret_versions')
        .set(patch)
        .where('secret_id', '=', s.id)
        .where('seq', '=', v.seq)
        .execute();
      return toMeta(s, { ...v, ...patch } as VersionRow);
    },

    async deleteSecret(env, name) {
      const e = await requireEnv(env);
      const s = await liveSecret(env, name);
      const now = Date.now();
      const purgeAt = now + e.retentionDays * DAY_MS;
      await db
        .updateTable('secrets')
        .set({ deleted_at: now, purge_at: purgeAt, updated_at: now })
        .where('id', '=', s.id)
        .execute();
      return deleted({ ...s, deleted_at: now, purge_at: purgeAt });
    },

    async listDeleted(env) {
      await requireEnv(env);
      const rows = await db
        .selectFrom('secrets')
        .selectAll()
        .where('env', '=', env)
        .where('deleted_at', 'is not', null)
        .orderBy('name')
        .execute();
      return Promise.all(rows.map(deleted));
    },

    async getDeleted(env, name) {
      await requireEnv(env);
      validateSecretName(name);
      const s = await findSecret(env, name);
      if (!s || s.deleted_at === null) throw E.deletedNotFound(env, name);
      return deleted(s);
    },

    async recoverSecret(env, name) {
      await requireEnv(env);
      validateSecretName(name);
      const s = await findSecret(env, name);
      if (!s || s.deleted_at === null) throw E.deletedNotFound(env, name);
      await db
        .updateTable('secrets')
        .set({ deleted_at: null, purge_at: null, updated_at: Date.now() })
        .where('id', '=', s.id)
        .execute();
      return summary({ ...s, deleted_at: null, purge_at: null });
    },

    async purgeSecret(env, name) {
      const e = await requireEnv(env);
      validateSecretName(name);
      const s = await findSecret(env, name);
      if (!s || s.deleted_at === null) throw E.deletedNotFound(env, name);
      if (e.purgeProtection && s.purge_at! > Date.now()) {
        throw new CustodyError(
          'PurgeProtected',
          403,
          `Environment ${env} has purge protection: ${env}/${name} can be purged after ${new Date(s.purge_at!).toISOString()}`,
          'Recover it instead, or wait for the retention period to end.',
        );
      }
      await db.deleteFrom('secrets').where('id', '=', s.id).execute();
    },

    async purgeDue(now = Date.now()) {
      const res = await db.deleteFrom('secrets').where('purge_at', '<=', now).executeTakeFirst();
      return Number(res.numDeletedRows);
    },
  };
}

function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!name)
    throw badRequest(
      'InvalidCursor',
      'The cursor is not one this server returned',
      'Start from the first page.',
    );
  return name;
}

function checkValue(value: unknown): void {
  if (typeof value !== 'string')
    throw badRequest('InvalidValue', 'A secret value is a string', 'Encode binary data as base64.');
  if (Buffer.byteLength(value, 'utf8') > MAX_VALUE_BYTES) {
    throw badRequest(
      'ValueTooLarge',
      `A secret value is at most ${MAX_VALUE_BYTES / 1024} KiB`,
      'Store large files elsewhere and keep their key here.',
    );
  }
}

function checkAttributes<T extends UpdateVersionInput>(a: T): T {
  for (const [field, t] of [
    ['notBefore', a.notBefore],
    ['expiresAt', a.expiresAt],
  ] as const) {
    if (t !== undefined && t !== null && (!Number.isSafeInteger(t) || t < 0)) {
      throw E.invalidAttribute(
        `${field} is not a valid time`,
        'Give an RFC 3339 time or epoch milliseconds.',
      );
    }
  }
  if (a.notBefore && a.expiresAt && a.notBefore >= a.expiresAt) {
    throw E.invalidAttribute('not-before must be earlier than expires', 'Check the two times.');
  }
  if (a.contentType !== undefined && a.contentType !== null && a.contentType.length > 255) {
    throw E.invalidAttribute(
      'content type is longer than 255 characters',
      'Use a MIME type such as application/json.',
    );
  }
  if (a.tags !== undefined) {
    const entries = Object.entries(a.tags ?? {});
    if (entries.length > 15)
      throw E.invalidAttribute('at most 15 tags per version', 'Azure Key Vault has the same limit.');
    for (const [k, v] of entries) {
      if (k.length === 0 || k.length > 256 || typeof v !== 'string' || v.length > 256) {
        throw E.invalidAttribute(
          'a tag name or value is empty, too long or not a string',
          'Tags are string pairs of up to 256 characters.',
        );
      }
    }
  }
  return a;
}
