import { CustodyError } from '../errors.js';
import type { KvContext } from './kv-context.js';
import type { KvService } from './kv-service.js';

const DAY_MS = 86_400_000;

type SoftDelete = Pick<
  KvService,
  'deleteSecret' | 'listDeleted' | 'getDeleted' | 'recoverSecret' | 'purgeSecret' | 'purgeDue'
>;

/**
 * The soft-delete lifecycle: a deleted secret keeps its versions for the environment's retention
 * period, during which it can be recovered, and is purged (for good) by hand or when that ends.
 */
export function createSoftDelete({
  db,
  requireEnv,
  liveSecret,
  deletedSecret,
  summary,
  deleted,
}: KvContext): SoftDelete {
  return {
    async deleteSecret(env, name) {
      const { environment, secret: s } = await liveSecret(env, name);
      const now = Date.now();
      const purgeAt = now + environment.retentionDays * DAY_MS;
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
      return deleted((await deletedSecret(env, name)).secret);
    },

    async recoverSecret(env, name) {
      const { secret: s } = await deletedSecret(env, name);
      await db
        .updateTable('secrets')
        .set({ deleted_at: null, purge_at: null, updated_at: Date.now() })
        .where('id', '=', s.id)
        .execute();
      return summary({ ...s, deleted_at: null, purge_at: null });
    },

    async purgeSecret(env, name) {
      const { environment, secret: s } = await deletedSecret(env, name);
      // Purge protection guarantees the retention period: until it ends, only recovery is allowed.
      if (environment.purgeProtection && s.purge_at! > Date.now()) {
        throw new CustodyError(
          'PurgeProtected',
          403,
          `Environment ${env} has purge protection: ${env}/${name} can be purged after ${new Date(s.purge_at!).toISOString()}`,
          'Recover it instead, or wait for the retention period to end.',
        );
      }
      // Versions go with the secret row (the foreign key cascades).
      await db.deleteFrom('secrets').where('id', '=', s.id).execute();
    },

    async purgeDue(now = Date.now()) {
      const res = await db.deleteFrom('secrets').where('purge_at', '<=', now).executeTakeFirst();
      return Number(res.numDeletedRows);
    },
  };
}
